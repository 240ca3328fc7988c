package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

const (
	// The host puts the kernel modules the channel needs here, named so that sorting gives the load order.
	modulesDir = "/.snapflow/modules"
	// The virtio-serial port QEMU names (virtserialport name=…); sysfs says which /dev/vport* it is.
	portName     = "org.snapflow.agent"
	portsClass   = "/sys/class/virtio-ports"
	portDeadline = 10 * time.Second

	sysFinitModule = 313 // x86_64; package syscall does not export it
	capSysModule   = 16
	capSysRawio    = 17
	capSysPtrace   = 19
)

// loadModules loads every module under modulesDir in name order. One already loaded (built in, or a second
// call) is not an error.
func loadModules() error {
	entries, err := os.ReadDir(modulesDir)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ko") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	params := []byte{0}
	for _, name := range names {
		f, err := os.Open(filepath.Join(modulesDir, name))
		if err != nil {
			return err
		}
		_, _, errno := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(&params[0])), 0)
		f.Close()
		if errno != 0 && errno != syscall.EEXIST {
			return fmt.Errorf("load %s: %w", name, errno)
		}
	}
	return nil
}

// openPort finds the agent's port by its name in sysfs (there is no udev to make /dev/virtio-ports links), opens
// it read-write (a port can be opened once), and unlinks its device node so no job finds it by name.
func openPort() (*os.File, error) {
	deadline := time.Now().Add(portDeadline)
	for {
		dev, err := findPort()
		if err == nil {
			port, err := os.OpenFile(dev, os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
			if err == nil {
				os.Remove(dev)
				return port, nil
			}
			if time.Now().After(deadline) {
				return nil, err
			}
		} else if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(20 * time.Millisecond) // the driver adds ports asynchronously, devtmpfs makes the node after
	}
}

func findPort() (string, error) {
	entries, _ := os.ReadDir(portsClass)
	for _, e := range entries {
		name, err := os.ReadFile(filepath.Join(portsClass, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(name)) == portName {
			dev := "/dev/" + e.Name()
			if _, err := os.Stat(dev); err != nil {
				return "", err
			}
			return dev, nil
		}
	}
	return "", errors.New("no virtio port named " + portName)
}

// confineJobs keeps jobs (root in the guest) away from the agent's open port and its memory (where the channel
// keys live): the agent becomes non-dumpable, so reaching into it (ptrace, /proc/1/fd, /proc/1/mem, pidfd_getfd)
// needs CAP_SYS_PTRACE, which leaves the bounding set with CAP_SYS_MODULE and CAP_SYS_RAWIO (a module or /dev/mem
// would reach anything). The agent keeps its own capabilities; every program it executes starts without these.
func confineJobs() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0); errno != 0 {
		return fmt.Errorf("PR_SET_DUMPABLE: %w", errno)
	}
	for _, capability := range []uintptr{capSysPtrace, capSysModule, capSysRawio} {
		// The bounding set is per thread, and Go starts processes from any of its threads.
		if _, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, syscall.PR_CAPBSET_DROP, capability, 0); errno != 0 {
			return fmt.Errorf("PR_CAPBSET_DROP %d: %w", capability, errno)
		}
	}
	return nil
}
