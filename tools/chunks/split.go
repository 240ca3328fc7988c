package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

// lseek whence values for sparse files (Linux); the syscall package has no names for them.
const (
	seekData = 3
	seekHole = 4
)

type splitOptions struct {
	in, store  string
	prev       *chunkMap
	chunkBytes int64
	maxSize    int64
	// -1: any owner. Otherwise the file must be this uid's with a single name: QEMU's file, not a link it planted.
	owner int
}

type splitResult struct {
	chunkMap
	Written   []string `json:"written"`
	ReadBytes int64    `json:"readBytes"`
	Ms        int64    `json:"ms"`
}

func split(o splitOptions) (*splitResult, error) {
	start := time.Now()
	f, err := os.OpenFile(o.in, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fail(exitFailure, "open %s: %v", o.in, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fail(exitFailure, "stat %s: %v", o.in, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fail(exitFailure, "%s is not a regular file", o.in)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && o.owner >= 0 && (int(sys.Uid) != o.owner || sys.Nlink != 1) {
		return nil, fail(exitFailure, "%s is not the expected owner's own file (uid %d, %d links)", o.in, sys.Uid, sys.Nlink)
	}
	size := st.Size()
	if size > o.maxSize {
		return nil, fail(exitFailure, "%s is %d bytes, more than --max-size %d", o.in, size, o.maxSize)
	}
	if err := checkStore(o.store); err != nil {
		return nil, err
	}

	// An unchanged chunk is found by its raw digest, wherever it was in the previous state (a page that moved
	// compresses to the same blob: compression is deterministic).
	prev := map[string]chunk{}
	if o.prev != nil && o.prev.ChunkBytes == o.chunkBytes {
		for _, c := range o.prev.Chunks {
			prev[c.Raw] = c
		}
	}

	m := chunkMap{Format: 1, Size: size, ChunkBytes: o.chunkBytes}
	indexes := make(chan int64, 64)
	walkErr := make(chan error, 1)
	var stop atomic.Bool
	go func() {
		defer close(indexes)
		walkErr <- dataChunks(int(f.Fd()), size, o.chunkBytes, &stop, indexes)
	}()

	var (
		mu        sync.Mutex
		chunks    []chunk
		written   []string
		claimed   = map[string]bool{}
		readBytes atomic.Int64
		firstErr  error
		wg        sync.WaitGroup
	)
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		stop.Store(true)
	}
	zero := make([]byte, o.chunkBytes)
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One goroutine per encoder, and no concurrency inside it: the same bytes always give the same blob.
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
				zstd.WithEncoderCRC(true))
			if err != nil {
				setErr(err)
				for range indexes {
				} // the sender must not block on a worker that is gone
				return
			}
			defer enc.Close()
			buf := make([]byte, o.chunkBytes)
			var dst []byte
			for i := range indexes {
				if stop.Load() {
					continue // drain, so the walker ends
				}
				n := m.chunkLen(i)
				data := buf[:n]
				if _, err := f.ReadAt(data, i*o.chunkBytes); err != nil {
					setErr(fail(exitFailure, "read chunk %d of %s: %v", i, o.in, err))
					continue
				}
				readBytes.Add(n)
				if bytes.Equal(data, zero[:n]) {
					continue
				}
				sum := sha256.Sum256(data)
				raw := hex.EncodeToString(sum[:])
				if c, ok := prev[raw]; ok && blobPresent(o.store, c.Blob, c.Bytes) {
					mu.Lock()
					chunks = append(chunks, chunk{I: i, Raw: raw, Blob: c.Blob, Bytes: c.Bytes})
					mu.Unlock()
					continue
				}
				dst = enc.EncodeAll(data, dst[:0])
				bsum := sha256.Sum256(dst)
				blob := "sha256:" + hex.EncodeToString(bsum[:])
				mu.Lock()
				chunks = append(chunks, chunk{I: i, Raw: raw, Blob: blob, Bytes: int64(len(dst))})
				// Two chunks with the same bytes: one writer.
				mine := !claimed[blob]
				claimed[blob] = true
				mu.Unlock()
				if !mine {
					continue
				}
				created, err := putBlob(o.store, blob, dst)
				if err != nil {
					setErr(err)
					continue
				}
				if created {
					mu.Lock()
					written = append(written, blob)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if err := <-walkErr; err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	sort.Slice(chunks, func(a, b int) bool { return chunks[a].I < chunks[b].I })
	sort.Strings(written)
	if chunks == nil {
		chunks = []chunk{}
	}
	if written == nil {
		written = []string{}
	}
	m.Chunks = chunks
	return &splitResult{chunkMap: m, Written: written, ReadBytes: readBytes.Load(), Ms: time.Since(start).Milliseconds()}, nil
}

// dataChunks sends the index of every chunk that overlaps a data region, in order, each once. Holes are skipped
// without reading them; a filesystem without SEEK_DATA counts as all data.
func dataChunks(fd int, size, chunkBytes int64, stop *atomic.Bool, out chan<- int64) error {
	next := int64(0) // the first chunk index not sent yet
	sendUpTo := func(end int64) {
		for ; next < end && !stop.Load(); next++ {
			out <- next
		}
	}
	count := (size + chunkBytes - 1) / chunkBytes
	off := int64(0)
	for off < size && !stop.Load() {
		data, err := syscall.Seek(fd, off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			return nil // only a hole is left
		}
		if errors.Is(err, syscall.EINVAL) && off == 0 {
			sendUpTo(count)
			return nil
		}
		if err != nil {
			return fail(exitFailure, "seek data: %v", err)
		}
		hole, err := syscall.Seek(fd, data, seekHole)
		if err != nil {
			return fail(exitFailure, "seek hole: %v", err)
		}
		if hole > size {
			hole = size // the file grew while we walk it: its size was taken before
		}
		if data >= hole {
			return nil
		}
		if first := data / chunkBytes; first > next {
			next = first
		}
		sendUpTo((hole + chunkBytes - 1) / chunkBytes)
		off = hole
	}
	return nil
}
