// snapflow-agent: the guest's first process. It mounts the kernel's filesystems, then serves jobs over the
// second serial port, one JSON object per line:
//
//	{"op":"exec","id":"j1","argv":["uname","-r"],"env":{"K":"V"},"workdir":"/root","timeoutMs":5000}
//	  → {"id":"j1","stream":"stdout","data":"<base64>"} … then {"id":"j1","exitCode":0,"timedOut":false}
//	{"op":"ping","id":"p1"} → {"id":"p1","pong":true,"uptimeMs":1234}
//
// A job runs argv directly (never through a shell), in its own process group. Processes a job leaves in the
// background keep running after it ends; on a timeout the whole group is killed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	consolePath = "/dev/ttyS0"
	channelPath = "/dev/ttyS1"
	readyLine   = "snapflow-agent ready"
)

type request struct {
	Op        string            `json:"op"`
	ID        string            `json:"id"`
	Argv      []string          `json:"argv"`
	Env       map[string]string `json:"env"`
	Workdir   string            `json:"workdir"`
	TimeoutMs int64             `json:"timeoutMs"`
}

// channel serialises writes: jobs stream concurrently over one port.
type channel struct {
	mu  sync.Mutex
	out *os.File
}

func (c *channel) send(msg any) {
	line, err := json.Marshal(msg)
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(append(line, '\n'))
}

func main() {
	if os.Getpid() == 1 {
		mountKernelFilesystems()
	}
	console, err := os.OpenFile(consolePath, os.O_WRONLY, 0)
	if err != nil {
		console = os.Stderr
	}
	port, err := os.OpenFile(channelPath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		fmt.Fprintf(console, "snapflow-agent: cannot open %s: %v\n", channelPath, err)
		halt()
	}
	if err := makeRaw(port); err != nil {
		fmt.Fprintf(console, "snapflow-agent: cannot make %s raw: %v\n", channelPath, err)
		halt()
	}
	reaper := newReaper()
	go reaper.run()
	ch := &channel{out: port}
	fmt.Fprintln(console, readyLine)
	ch.send(map[string]any{"event": "ready", "uptimeMs": uptimeMs()})

	lines := bufio.NewReaderSize(port, 64*1024)
	for {
		line, err := lines.ReadString('\n')
		if err != nil {
			// A serial port has no end; a read error is transient (e.g. the host reconnecting).
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var req request
		if json.Unmarshal([]byte(strings.TrimSpace(line)), &req) != nil {
			continue // noise from before the port was raw, or a half line from a host that went away
		}
		switch req.Op {
		case "ping":
			ch.send(map[string]any{"id": req.ID, "pong": true, "uptimeMs": uptimeMs()})
		case "exec":
			go runJob(ch, reaper, req)
		default:
			ch.send(map[string]any{"id": req.ID, "error": "unknown op " + req.Op})
		}
	}
}

var stdio *os.File

func mountKernelFilesystems() {
	mounts := []struct{ source, target, fstype string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
		{"devtmpfs", "/dev", "devtmpfs"},
		{"devpts", "/dev/pts", "devpts"},
		{"tmpfs", "/run", "tmpfs"},
	}
	for _, m := range mounts {
		os.MkdirAll(m.target, 0o755)
		syscall.Mount(m.source, m.target, m.fstype, 0, "")
	}
	syscall.Sethostname([]byte("sandbox"))
	// The root may lack /dev/console (an image exported without privileges): stdio comes from devtmpfs.
	if console, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			syscall.Dup3(int(console.Fd()), fd, 0)
		}
		stdio = console // kept referenced: it may itself be fd 0
	}
}

func halt() {
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	os.Exit(1)
}

func uptimeMs() int64 {
	raw, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return -1
	}
	var seconds float64
	fmt.Sscanf(string(raw), "%f", &seconds)
	return int64(seconds * 1000)
}
