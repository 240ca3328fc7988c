package main

import (
	"encoding/binary"
	"os"
	"syscall"
)

// Binary output frames (format 1), used for a job whose exec request asks for them with "frames":1; every other
// message stays a JSON line. A frame is a fixed header, the job's id and the connection's key, then the bytes:
//
//	0..3  magic "\xF5SFB"   (0xF5 never occurs in UTF-8, so never inside a JSON line: the host tells them apart by it)
//	4     type              1 = output
//	5     stream            1 = stdout, 2 = stderr
//	6     id length         ≤ 64
//	7     key length        ≤ 64
//	8..11 data length       big-endian, ≤ maxFrameData (the host refuses more than its own frame limit)
//	12..  id, key, data
//
// A host that does not ask gets JSON lines with base64 data, as before: a machine saved with an older agent, or an
// older host, keeps working.
const (
	framesBinary = 1
	frameMagic   = "\xf5SFB"
	frameOutput  = 1
	frameFixed   = 12
	maxFrameTag  = 64
	streamStdout = 1
	streamStderr = 2
	// What one frame carries at most: a read of the job's pipe. The host's limit is 1 MiB.
	maxFrameData = 256 * 1024
	pipeBytes    = 1024 * 1024
	fSetPipeSize = 1031 // F_SETPIPE_SZ; package syscall does not export it
)

// outputFrames gives a stream's read buffer and the sender of what was read into it: the header is built once and
// the pipe is read straight in after it, so each frame is one write with no copy of its data.
func outputFrames(ch *channel, req request, stream byte) ([]byte, func(n int)) {
	head := make([]byte, frameFixed, frameFixed+len(req.ID)+len(req.Key))
	copy(head, frameMagic)
	head[4], head[5], head[6], head[7] = frameOutput, stream, byte(len(req.ID)), byte(len(req.Key))
	head = append(append(head, req.ID...), req.Key...)
	buf := make([]byte, len(head)+maxFrameData)
	copy(buf, head)
	return buf[len(head):], func(n int) {
		binary.BigEndian.PutUint32(buf[8:12], uint32(n))
		ch.write(buf[:len(head)+n])
	}
}

// growPipe asks for a bigger pipe buffer; the default (64 KiB) stays when the kernel refuses.
func growPipe(f *os.File) {
	syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fSetPipeSize, pipeBytes)
}
