package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// Once a job's process has exited and what it left in its pipes is sent, its streams are read for this much
	// longer: a background process that inherited a pipe must not hold the job open.
	drainGrace = 200 * time.Millisecond
)

type output struct {
	ID     string `json:"id"`
	Key    string `json:"k"`
	Stream string `json:"stream"`
	Data   []byte `json:"data"` // base64 on the wire
}

type exit struct {
	ID       string `json:"id"`
	Key      string `json:"k"`
	ExitCode int    `json:"exitCode"`
	TimedOut bool   `json:"timedOut"`
	Error    string `json:"error,omitempty"`
}

// reaper is PID 1's duty: it waits for every child, including orphans re-parented to it, and hands each
// job its own child's status. Jobs therefore start processes with ForkExec, never os/exec (whose Wait
// would race this loop).
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
}

func newReaper() *reaper { return &reaper{waiting: map[int]chan syscall.WaitStatus{}} }

func (r *reaper) start(path string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock() // held until the pid is registered, so run() cannot miss an early exit
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	done := make(chan syscall.WaitStatus, 1)
	r.waiting[pid] = done
	return pid, done, nil
}

func (r *reaper) run() {
	children := make(chan os.Signal, 16)
	signal.Notify(children, syscall.SIGCHLD)
	for {
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			r.mu.Lock()
			if done, ok := r.waiting[pid]; ok {
				done <- status
				delete(r.waiting, pid)
			}
			r.mu.Unlock()
		}
		select {
		case <-children:
		case <-time.After(time.Second): // a missed signal costs at most a second
		}
	}
}

// running maps a job's id to its process group while it runs, for a cancel.
var running sync.Map

func cancelJob(id string, grace time.Duration) {
	value, ok := running.Load(id)
	if !ok {
		return
	}
	pid := value.(int)
	syscall.Kill(-pid, syscall.SIGTERM)
	go func() {
		time.Sleep(grace)
		if current, still := running.Load(id); still && current.(int) == pid {
			syscall.Kill(-pid, syscall.SIGKILL)
		}
	}()
}

func runJob(ch *channel, r *reaper, req request) {
	if len(req.Argv) == 0 {
		ch.send(exit{ID: req.ID, Key: req.Key, ExitCode: 127, Error: "empty argv"})
		return
	}
	env := jobEnv(req.Env)
	workdir := req.Workdir
	if workdir == "" {
		workdir = "/"
	}
	path, err := lookPath(req.Argv[0], env)
	if err != nil {
		fail(ch, req, 127, err)
		return
	}
	devnull, _ := os.Open("/dev/null")
	outR, outW, _ := os.Pipe()
	errR, errW, _ := os.Pipe()
	// Bigger pipes: fewer, fuller reads and frames (every syscall is dear under emulation). Set on the write ends,
	// whose Fd() is taken anyway: Fd() on a read end would make it blocking and void its read deadline.
	growPipe(outW)
	growPipe(errW)
	attr := &syscall.ProcAttr{
		Dir:   workdir,
		Env:   env,
		Files: []uintptr{devnull.Fd(), outW.Fd(), errW.Fd()},
		Sys:   &syscall.SysProcAttr{Setpgid: true}, // the job's group: what a timeout kills
	}
	pid, done, err := r.start(path, req.Argv, attr)
	devnull.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		code := 126
		if errors.Is(err, syscall.ENOENT) {
			code = 127
		}
		fail(ch, req, code, fmt.Errorf("%s: %w", req.Argv[0], err))
		return
	}

	running.Store(req.ID, pid)
	defer running.Delete(req.ID)

	// A frame names its job and connection in at most maxFrameTag bytes each; a host whose ids do not fit gets lines.
	binary := req.Frames == framesBinary && len(req.ID) >= 1 && len(req.ID) <= maxFrameTag && len(req.Key) >= 1 && len(req.Key) <= maxFrameTag
	var exited atomic.Bool
	var streams sync.WaitGroup
	for _, s := range []struct {
		name string
		code byte
		file *os.File
	}{{"stdout", streamStdout, outR}, {"stderr", streamStderr, errR}} {
		streams.Add(1)
		go func(name string, code byte, file *os.File) {
			defer streams.Done()
			if binary {
				into, send := outputFrames(ch, req, code)
				drain(file, &exited, into, send)
				return
			}
			buf := make([]byte, 64*1024) // one line per read: ~87 KiB of base64, far below the host's frame cap
			frame := make([]byte, 0, 96*1024)
			drain(file, &exited, buf, func(n int) { ch.sendOutput(&frame, req.ID, req.Key, name, buf[:n]) })
		}(s.name, s.code, s.file)
	}

	timedOut := false
	var status syscall.WaitStatus
	if req.TimeoutMs > 0 {
		select {
		case status = <-done:
		case <-time.After(time.Duration(req.TimeoutMs) * time.Millisecond):
			timedOut = true
			syscall.Kill(-pid, syscall.SIGKILL)
			status = <-done
		}
	} else {
		status = <-done
	}
	// Wakes a stream blocked on an empty pipe after the grace; set before the flag, which a stream that still has
	// bytes to send answers by lifting it (drain).
	deadline := time.Now().Add(drainGrace)
	outR.SetReadDeadline(deadline)
	errR.SetReadDeadline(deadline)
	exited.Store(true)
	streams.Wait()
	outR.Close()
	errR.Close()

	code := status.ExitStatus()
	if status.Signaled() {
		code = 128 + int(status.Signal())
	}
	ch.send(exit{ID: req.ID, Key: req.Key, ExitCode: code, TimedOut: timedOut})
}

func fail(ch *channel, req request, code int, err error) {
	ch.send(output{ID: req.ID, Key: req.Key, Stream: "stderr", Data: []byte(err.Error() + "\n")})
	ch.send(exit{ID: req.ID, Key: req.Key, ExitCode: code, Error: err.Error()})
}

// jobEnv is a fixed base (the image's own variables come from the host) plus the job's variables, sorted.
func jobEnv(extra map[string]string) []string {
	vars := map[string]string{"PATH": defaultPath, "HOME": "/root", "TERM": "dumb"}
	for k, v := range extra {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := defaultPath
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			path = kv[len("PATH="):]
		}
	}
	for _, dir := range strings.Split(path, ":") {
		candidate := dir + "/" + name
		if info, err := os.Stat(candidate); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, os.ErrNotExist)
}

// drain reads a job's pipe until it ends, handing each read to the stream's sender (which sends it as a frame or a
// JSON line). After the job's process exits, every byte already in the pipe is still read and sent, however long the
// host takes to take them (a full 1 MiB pipe behind a busy host needs more than the grace); only then does the
// grace start, for what a background process may still write.
func drain(file *os.File, exited *atomic.Bool, into []byte, send func(n int)) {
	noticed, armed := false, false
	left := 0
	for {
		if !noticed && exited.Load() {
			noticed = true
			if left = buffered(file); left > 0 {
				file.SetReadDeadline(time.Time{})
			}
		}
		n, err := file.Read(into)
		if n > 0 {
			send(n)
			left -= n
		}
		if noticed && left <= 0 && !armed {
			file.SetReadDeadline(time.Now().Add(drainGrace))
			armed = true
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !noticed {
				continue // the exit's deadline woke an empty read: what the pipe holds now is counted first
			}
			return
		}
	}
}

// buffered says how many bytes wait in a pipe (FIONREAD), through the poller so the file stays non-blocking.
func buffered(file *os.File) int {
	raw, err := file.SyscallConn()
	if err != nil {
		return 0
	}
	var n int32
	raw.Control(func(fd uintptr) {
		syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	})
	return int(n)
}
