package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const testChunk = 64 << 10

// sparseFile makes a file of size bytes with random data at the given offsets and holes elsewhere.
func sparseFile(t *testing.T, dir string, size int64, regions map[int64]int) string {
	t.Helper()
	path := filepath.Join(dir, "in")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	for off, n := range regions {
		b := make([]byte, n)
		r.Read(b)
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func newStore(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustSplit(t *testing.T, in, store string, prev *chunkMap) *splitResult {
	t.Helper()
	res, err := split(splitOptions{in: in, store: store, prev: prev, chunkBytes: testChunk, maxSize: defaultMaxSize})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func exitCode(err error) int {
	if f, ok := err.(*failure); ok {
		return f.code
	}
	return -1
}

func TestRoundTripSparseWithShortLastChunk(t *testing.T) {
	dir := t.TempDir()
	size := int64(40*testChunk + 1234) // the last chunk is short
	in := sparseFile(t, dir, size, map[int64]int{
		0:                100,           // a chunk mostly hole
		5*testChunk + 17: 3 * testChunk, // spans four chunks
		40 * testChunk:   1234,          // the short last chunk
	})
	// A written all-zero chunk: data on disk, but elided from the map.
	f, _ := os.OpenFile(in, os.O_WRONLY, 0)
	f.WriteAt(make([]byte, testChunk), 20*testChunk)
	f.Close()

	store := newStore(t)
	res := mustSplit(t, in, store, nil)
	var got []int64
	for _, c := range res.Chunks {
		got = append(got, c.I)
	}
	want := []int64{0, 5, 6, 7, 8, 40}
	if !equal(got, want) {
		t.Fatalf("chunks %v, want %v", got, want)
	}
	if len(res.Written) != len(want) {
		t.Fatalf("written %d blobs, want %d", len(res.Written), len(want))
	}
	// Holes are not read: the data chunks, the zero one, and nothing else.
	if max := int64(7*testChunk) + 1234; res.ReadBytes > max {
		t.Fatalf("read %d bytes, more than the %d of data", res.ReadBytes, max)
	}
	for _, b := range res.Written {
		st, err := os.Stat(blobFile(store, b))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("blob %s: %v %v", b, err, st.Mode())
		}
	}

	out := filepath.Join(dir, "out")
	ares, err := assemble(assembleOptions{m: &res.chunkMap, store: store, out: out, uid: -1, gid: -1})
	if err != nil {
		t.Fatal(err)
	}
	if ares.Written != 5*testChunk+1234 {
		t.Fatalf("assemble wrote %d", ares.Written)
	}
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a, b) {
		t.Fatal("assembled file differs")
	}
	var st syscall.Stat_t
	syscall.Stat(out, &st)
	if st.Blocks*512 > 8*testChunk {
		t.Fatalf("assembled file not sparse: %d bytes allocated", st.Blocks*512)
	}
	// Deterministic: splitting the copy names the same blobs and writes none.
	again := mustSplit(t, out, store, nil)
	if len(again.Written) != 0 || !sameChunks(again.Chunks, res.Chunks) {
		t.Fatalf("split of the copy differs: written %v", again.Written)
	}
}

func TestPrevReuseWritesNothingNew(t *testing.T) {
	dir := t.TempDir()
	in := sparseFile(t, dir, 32*testChunk, map[int64]int{0: 10 * testChunk})
	store := newStore(t)
	first := mustSplit(t, in, store, nil)
	second := mustSplit(t, in, store, &first.chunkMap)
	if len(second.Written) != 0 || !sameChunks(first.Chunks, second.Chunks) {
		t.Fatalf("unchanged file: wrote %v", second.Written)
	}
	// One byte changed: one chunk written.
	f, _ := os.OpenFile(in, os.O_WRONLY, 0)
	f.WriteAt([]byte{0xff, 0xfe}, 3*testChunk+9)
	f.Close()
	third := mustSplit(t, in, store, &second.chunkMap)
	if len(third.Written) != 1 || third.Chunks[3].Blob != third.Written[0] {
		t.Fatalf("one changed chunk: wrote %v", third.Written)
	}
	// A reused chunk whose file was lost is written again rather than referenced.
	os.Remove(blobFile(store, third.Chunks[0].Blob))
	fourth := mustSplit(t, in, store, &third.chunkMap)
	if len(fourth.Written) != 1 || fourth.Written[0] != third.Chunks[0].Blob {
		t.Fatalf("lost chunk: wrote %v", fourth.Written)
	}
}

func TestAssembleRefusesCorruptChunk(t *testing.T) {
	dir := t.TempDir()
	in := sparseFile(t, dir, 8*testChunk, map[int64]int{testChunk: 2 * testChunk})
	store := newStore(t)
	res := mustSplit(t, in, store, nil)
	path := blobFile(store, res.Chunks[1].Blob)
	data, _ := os.ReadFile(path)
	data[len(data)/2] ^= 0x40
	os.WriteFile(path, data, 0o600)
	out := filepath.Join(dir, "out")
	_, err := assemble(assembleOptions{m: &res.chunkMap, store: store, out: out, uid: -1, gid: -1})
	if exitCode(err) != exitCorrupt || !strings.Contains(err.Error(), res.Chunks[1].Blob) {
		t.Fatalf("corrupt chunk: %v", err)
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Fatal("output left behind")
	}
}

func TestAssembleNamesMissingChunks(t *testing.T) {
	dir := t.TempDir()
	in := sparseFile(t, dir, 8*testChunk, map[int64]int{0: 3 * testChunk})
	store := newStore(t)
	res := mustSplit(t, in, store, nil)
	os.Remove(blobFile(store, res.Chunks[0].Blob))
	os.Remove(blobFile(store, res.Chunks[2].Blob))
	mapFile := filepath.Join(dir, "map.json")
	b, _ := json.Marshal(res.chunkMap)
	os.WriteFile(mapFile, b, 0o600)
	var stdout, stderr bytes.Buffer
	out := filepath.Join(dir, "out")
	code := run([]string{"assemble", "--map", mapFile, "--store", store, "--out", out}, &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != exitMissing || len(lines) != 2 || lines[0] != "missing chunk "+res.Chunks[0].Blob {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Fatal("output created despite missing chunks")
	}
}

func TestRefusesSymlinkAndNonRegularInput(t *testing.T) {
	dir := t.TempDir()
	in := sparseFile(t, dir, testChunk, map[int64]int{0: 10})
	link := filepath.Join(dir, "link")
	os.Symlink(in, link)
	store := newStore(t)
	for _, path := range []string{link, dir, "/dev/zero"} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"split", "--in", path, "--store", store}, &stdout, &stderr)
		if code != exitFailure || stdout.Len() != 0 || strings.Count(stderr.String(), "\n") != 1 {
			t.Fatalf("%s: exit %d, stderr %q", path, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"split", "--in", in, "--store", store, "--max-size", "100"}, &stdout, &stderr); code != exitFailure {
		t.Fatalf("over --max-size: exit %d", code)
	}
	if code := run([]string{"split", "--in", in}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("no --store: exit %d", code)
	}
}

func TestMapCannotNameAPathOutsideTheStore(t *testing.T) {
	m := chunkMap{Format: 1, Size: testChunk, ChunkBytes: testChunk, Chunks: []chunk{
		{I: 0, Raw: strings.Repeat("a", 64), Blob: "sha256:../../etc/passwd", Bytes: 10},
	}}
	if err := m.validate(); err == nil {
		t.Fatal("accepted a blob that is not a digest")
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameChunks(a, b []chunk) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
