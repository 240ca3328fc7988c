// snapflow-agent: the guest's first process. It mounts the kernel's filesystems, loads the virtio modules the
// host put in /.snapflow/modules, switches to the root disk when the kernel command line names one (root.go), then
// serves jobs over the virtio-serial port org.snapflow.agent, one JSON object
// per line:
//
//	{"op":"exec","id":"j1","k":"<key>","argv":["uname","-r"],"env":{"K":"V"},"workdir":"/root","timeoutMs":5000}
//	  → {"id":"j1","k":"<key>","stream":"stdout","data":"<base64>"} … then {"id":"j1","k":"<key>","exitCode":0,"timedOut":false}
//	  with "frames":1 in the request, the output comes as binary frames instead (frames.go); the exit stays JSON
//	{"op":"ping","id":"p1","k":"<key>"} → {"id":"p1","k":"<key>","pong":true,"uptimeMs":1234}
//
// Every answer carries the key of the request it answers: the host draws one per connection and drops frames
// without it. The key lives only in this process's memory, which jobs cannot read (see confineJobs).
//
// A job runs argv directly (never through a shell), in its own process group. Processes a job leaves in the
// background keep running after it ends; on a timeout the whole group is killed.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	consolePath = "/dev/ttyS0"
	readyLine   = "snapflow-agent ready"
	// While no host is connected, reads of the port end at once: the agent polls, backing off to this.
	idlePollMax = 200 * time.Millisecond
)

type request struct {
	Op        string            `json:"op"`
	ID        string            `json:"id"`
	Key       string            `json:"k"`
	Argv      []string          `json:"argv"`
	Env       map[string]string `json:"env"`
	Workdir   string            `json:"workdir"`
	TimeoutMs int64             `json:"timeoutMs"`
	GraceMs   int64             `json:"graceMs"`
	// 1: stream this job's output as binary frames (frames.go); 0: JSON lines.
	Frames int `json:"frames"`
}

// channel serialises writes: jobs stream concurrently over one port.
type channel struct {
	mu  sync.Mutex
	out *os.File
}

// sendOutput writes one output frame, built by hand into the stream's own buffer: under TCG the reflection and the
// copies of json.Marshal cost more than the base64 itself. Ids and keys are the host's, echoed JSON-quoted.
func (c *channel) sendOutput(frame *[]byte, id, key, stream string, data []byte) {
	b := (*frame)[:0]
	b = append(b, `{"id":`...)
	b = appendQuoted(b, id)
	b = append(b, `,"k":`...)
	b = appendQuoted(b, key)
	b = append(b, `,"stream":"`...)
	b = append(b, stream...)
	b = append(b, `","data":"`...)
	n := base64.StdEncoding.EncodedLen(len(data))
	b = append(b, make([]byte, n)...)
	base64.StdEncoding.Encode(b[len(b)-n:], data)
	b = append(b, "\"}\n"...)
	*frame = b
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(b)
}

// write sends one whole binary frame.
func (c *channel) write(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.out.Write(frame)
}

func appendQuoted(b []byte, s string) []byte {
	quoted, _ := json.Marshal(s)
	return append(b, quoted...)
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
	if err := loadModules(); err != nil {
		fmt.Fprintf(console, "snapflow-agent: cannot load the channel's modules: %v\n", err)
		halt()
	}
	if device := rootDevice(); device != "" && os.Getpid() == 1 {
		if err := switchRoot(device); err != nil {
			fmt.Fprintf(console, "snapflow-agent: cannot switch to the root disk: %v\n", err)
			halt()
		}
	}
	port, err := openPort()
	if err != nil {
		fmt.Fprintf(console, "snapflow-agent: cannot open the port %s: %v\n", portName, err)
		halt()
	}
	if err := confineJobs(); err != nil {
		fmt.Fprintf(console, "snapflow-agent: cannot confine jobs: %v\n", err)
		halt()
	}
	reaper := newReaper()
	go reaper.run()
	ch := &channel{out: port}
	fmt.Fprintln(console, readyLine)

	lines := bufio.NewReaderSize(port, 64*1024)
	idle := time.Millisecond
	for {
		line, err := lines.ReadString('\n')
		if err == io.EOF {
			// No host connected (or it went away): whatever half line it left is dropped. Not an end.
			time.Sleep(idle)
			idle = min(idle*2, idlePollMax)
			continue
		} else if err != nil {
			time.Sleep(idlePollMax)
			continue
		}
		idle = time.Millisecond
		var req request
		if json.Unmarshal([]byte(strings.TrimSpace(line)), &req) != nil {
			continue // a half line from a host that went away
		}
		switch req.Op {
		case "ping":
			ch.send(map[string]any{"id": req.ID, "k": req.Key, "pong": true, "uptimeMs": uptimeMs()})
		case "exec":
			go runJob(ch, reaper, req)
		case "signal":
			// A cancel: SIGTERM to the job's group now, SIGKILL after the grace if it is still there.
			cancelJob(req.ID, time.Duration(req.GraceMs)*time.Millisecond)
		default:
			ch.send(map[string]any{"id": req.ID, "k": req.Key, "error": "unknown op " + req.Op})
		}
	}
}

// stdio holds every console opened for fds 0-2 (one per root): a dropped *os.File would close its descriptor, which
// may itself be one of them.
var stdio []*os.File

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
		stdio = append(stdio, console) // kept referenced: it may itself be fd 0
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
