package main

// The root disk: the kernel boots the agent from a small initramfs (the agent and its modules); with
// snapflow.root=<device> on the kernel command line the agent mounts that disk (the image's files, ext4) and makes it
// the root before it serves anything, as switch_root does. The image's files live on the disk, not in guest RAM.

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

const (
	rootArg     = "snapflow.root="
	newRoot     = "/.snapflow-root"
	rootTimeout = 30 * time.Second
)

// rootDevice is the device named on the kernel command line, or "" when the initramfs is the root.
func rootDevice() string {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return ""
	}
	for _, field := range strings.Fields(string(raw)) {
		if strings.HasPrefix(field, rootArg) {
			return strings.TrimPrefix(field, rootArg)
		}
	}
	return ""
}

// switchRoot mounts device on a directory of the initramfs, moves it over / and enters it, then mounts the kernel's
// filesystems again inside it. The initramfs's own mounts are detached first: nothing refers to them afterwards.
// The agent keeps running from its initramfs copy (already mapped); jobs see only the disk.
func switchRoot(device string) error {
	deadline := time.Now().Add(rootTimeout)
	for {
		if _, err := os.Stat(device); err == nil {
			break
		} else if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s: %v", device, rootTimeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.MkdirAll(newRoot, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount(device, newRoot, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %v", device, err)
	}
	// The host's files (the agent, its modules) stay where a guest finds them, read-only: the disk holds an empty
	// /.snapflow for them (no image entry is kept there).
	hostFiles := newRoot + "/.snapflow"
	if err := syscall.Mount("/.snapflow", hostFiles, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind /.snapflow: %v", err)
	}
	syscall.Mount("", hostFiles, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, "")
	for _, m := range []string{"/dev/pts", "/dev", "/run", "/sys", "/proc"} {
		syscall.Unmount(m, syscall.MNT_DETACH)
	}
	if err := syscall.Chdir(newRoot); err != nil {
		return err
	}
	if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the root: %v", err)
	}
	if err := syscall.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %v", err)
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	mountKernelFilesystems()
	return nil
}
