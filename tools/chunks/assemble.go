package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

type assembleOptions struct {
	m        *chunkMap
	store    string
	out      string
	uid, gid int
	// into: fill a file that exists already (empty, of the map's size), which a process may map while it is
	// filled (QEMU starting beside a restore); it is neither created, chowned nor removed here.
	into bool
}

type assembleResult struct {
	Written int64 `json:"written"`
	Ms      int64 `json:"ms"`
}

func assemble(o assembleOptions) (res *assembleResult, err error) {
	start := time.Now()
	m := o.m
	// Every missing chunk at once, before anything is created: the caller fetches them all and runs again.
	var missing []string
	seen := map[string]bool{}
	for _, c := range m.Chunks {
		if seen[c.Blob] {
			continue
		}
		seen[c.Blob] = true
		if _, err := os.Lstat(blobFile(o.store, c.Blob)); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, "missing chunk "+c.Blob)
		}
	}
	if len(missing) > 0 {
		return nil, &failure{code: exitMissing, msg: strings.Join(missing, "\n"), lines: true}
	}

	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL | syscall.O_NOFOLLOW
	if o.into {
		flags = os.O_WRONLY | syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(o.out, flags, 0o600)
	if err != nil {
		return nil, fail(exitFailure, "create %s: %v", o.out, err)
	}
	defer func() {
		cerr := f.Close()
		if err == nil && cerr != nil {
			err = fail(exitFailure, "close %s: %v", o.out, cerr)
		}
		if err != nil && !o.into {
			os.Remove(o.out) // never a half-written state
		}
	}()
	if o.into {
		st, err := f.Stat()
		if err != nil {
			return nil, fail(exitFailure, "stat %s: %v", o.out, err)
		}
		sys, _ := st.Sys().(*syscall.Stat_t)
		if !st.Mode().IsRegular() || st.Size() != m.Size || sys == nil || sys.Blocks != 0 {
			return nil, fail(exitFailure, "%s is not an empty file of %d bytes", o.out, m.Size)
		}
	} else if o.uid >= 0 {
		if err := f.Chown(o.uid, o.gid); err != nil {
			return nil, fail(exitFailure, "chown %s: %v", o.out, err)
		}
	}
	// Sparse: only the chunks in the map are written, the rest stays a hole that reads as zeros.
	if !o.into {
		if err := f.Truncate(m.Size); err != nil {
			return nil, fail(exitFailure, "truncate %s: %v", o.out, err)
		}
	}

	jobs := make(chan chunk, 64)
	var (
		mu       sync.Mutex
		firstErr error
		stop     atomic.Bool
		written  atomic.Int64
		wg       sync.WaitGroup
	)
	setErr := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		stop.Store(true)
	}
	for w := 0; w < runtime.NumCPU(); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The decoder never makes more than one chunk: a chunk file that claims more is refused, not expanded.
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(m.ChunkBytes)))
			if err != nil {
				setErr(err)
				for range jobs {
				} // the sender must not block on a worker that is gone
				return
			}
			defer dec.Close()
			src := make([]byte, 0, maxBlobBytes(m.ChunkBytes))
			dst := make([]byte, 0, m.ChunkBytes)
			for c := range jobs {
				if stop.Load() {
					continue
				}
				n, err := putChunk(o, f, dec, c, &src, &dst)
				if err != nil {
					setErr(err)
					continue
				}
				written.Add(n)
			}
		}()
	}
	for _, c := range m.Chunks {
		if stop.Load() {
			break
		}
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return &assembleResult{Written: written.Load(), Ms: time.Since(start).Milliseconds()}, nil
}

// putChunk reads, checks and writes one chunk; src and dst are the worker's buffers.
func putChunk(o assembleOptions, out *os.File, dec *zstd.Decoder, c chunk, src, dst *[]byte) (int64, error) {
	corrupt := func(why string) error {
		return fail(exitCorrupt, "corrupt chunk %s (index %d): %s", c.Blob, c.I, why)
	}
	in, err := os.OpenFile(blobFile(o.store, c.Blob), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fail(exitMissing, "missing chunk %s", c.Blob) // removed since the check (eviction)
	}
	if err != nil {
		return 0, fail(exitFailure, "open chunk %s: %v", c.Blob, err)
	}
	limit := maxBlobBytes(o.m.ChunkBytes)
	buf := bytes.NewBuffer((*src)[:0])
	_, err = buf.ReadFrom(io.LimitReader(in, limit+1))
	in.Close()
	*src = buf.Bytes()
	if err != nil {
		return 0, fail(exitFailure, "read chunk %s: %v", c.Blob, err)
	}
	if int64(len(*src)) > limit {
		return 0, corrupt("larger than a compressed chunk can be")
	}
	*dst, err = dec.DecodeAll(*src, (*dst)[:0])
	if err != nil {
		return 0, corrupt("zstd: " + err.Error())
	}
	want := o.m.chunkLen(c.I)
	if int64(len(*dst)) != want {
		return 0, corrupt("decompressed length differs from the map")
	}
	sum := sha256.Sum256(*dst)
	if hex.EncodeToString(sum[:]) != c.Raw {
		return 0, corrupt("decompressed bytes do not match the map")
	}
	if _, err := out.WriteAt(*dst, c.I*o.m.ChunkBytes); err != nil {
		return 0, fail(exitFailure, "write chunk %d of %s: %v", c.I, o.out, err)
	}
	return want, nil
}
