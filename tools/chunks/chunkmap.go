package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
)

const (
	defaultChunkBytes = 256 << 10
	minChunkBytes     = 4 << 10
	maxChunkBytes     = 64 << 20
	defaultMaxSize    = 1 << 40
	// A map is ours, but it may have travelled through storage: read it with a bound.
	maxMapBytes = 256 << 20
)

var (
	blobPattern = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	rawPattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

type chunk struct {
	I     int64  `json:"i"`
	Raw   string `json:"raw"`
	Blob  string `json:"blob"`
	Bytes int64  `json:"bytes"`
}

type chunkMap struct {
	Format     int     `json:"format"`
	Size       int64   `json:"size"`
	ChunkBytes int64   `json:"chunkBytes"`
	Chunks     []chunk `json:"chunks"`
}

// blobFile is where a chunk lives in the store: the digest's hex, checked first so a map can never name a path
// outside the store.
func blobFile(store, blob string) string {
	return filepath.Join(store, blob[len("sha256:"):])
}

// chunkLen is chunk i's length: the last one may be short.
func (m *chunkMap) chunkLen(i int64) int64 {
	return min(m.ChunkBytes, m.Size-i*m.ChunkBytes)
}

func readMap(path string) (*chunkMap, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fail(exitFailure, "map: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMapBytes+1))
	if err != nil {
		return nil, fail(exitFailure, "map %s: %v", path, err)
	}
	if len(data) > maxMapBytes {
		return nil, fail(exitFailure, "map %s: larger than %d bytes", path, maxMapBytes)
	}
	var m chunkMap
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fail(exitFailure, "map %s: %v", path, err)
	}
	if err := m.validate(); err != nil {
		return nil, fail(exitFailure, "map %s: %v", path, err)
	}
	return &m, nil
}

func (m *chunkMap) validate() error {
	if m.Format != 1 {
		return fmt.Errorf("format %d (want 1)", m.Format)
	}
	if m.ChunkBytes < minChunkBytes || m.ChunkBytes > maxChunkBytes {
		return fmt.Errorf("chunkBytes %d out of range", m.ChunkBytes)
	}
	if m.Size < 0 || m.Size > defaultMaxSize {
		return fmt.Errorf("size %d out of range", m.Size)
	}
	count := (m.Size + m.ChunkBytes - 1) / m.ChunkBytes
	seen := make(map[int64]bool, len(m.Chunks))
	for _, c := range m.Chunks {
		if c.I < 0 || c.I >= count {
			return fmt.Errorf("chunk %d outside a %d-byte file", c.I, m.Size)
		}
		if seen[c.I] {
			return fmt.Errorf("chunk %d listed twice", c.I)
		}
		seen[c.I] = true
		if !rawPattern.MatchString(c.Raw) || !blobPattern.MatchString(c.Blob) {
			return fmt.Errorf("chunk %d: malformed digest", c.I)
		}
		if c.Bytes <= 0 || c.Bytes > maxBlobBytes(m.ChunkBytes) {
			return fmt.Errorf("chunk %d: %d compressed bytes", c.I, c.Bytes)
		}
	}
	return nil
}

// maxBlobBytes bounds a compressed chunk: zstd's worst case is a little over the input (stored blocks).
func maxBlobBytes(chunkBytes int64) int64 {
	return chunkBytes + chunkBytes/128 + 1024
}
