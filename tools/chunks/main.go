// snapflow-chunks: stores a large, mostly sparse file (a vm's guest RAM, its disk overlay) as fixed-size,
// content-addressed, zstd-compressed chunks in a directory, and puts such a file back together.
//
//	snapflow-chunks split --in FILE --store DIR [--prev PREV.json] [--chunk BYTES] [--max-size N]
//	  → {"format":1,"size":…,"chunkBytes":…,"chunks":[{"i":0,"raw":"<hex>","blob":"sha256:<hex>","bytes":…}],
//	     "written":["sha256:<hex>"],"readBytes":…,"ms":…}
//	snapflow-chunks assemble --map MAP.json --store DIR --out FILE [--uid U --gid G]
//	  → {"written":…,"ms":…}
//
// A chunk is named by the sha256 of its compressed bytes (what a registry calls the blob's digest); "raw" is the
// sha256 of its uncompressed bytes, which is how split recognises an unchanged chunk against the previous map
// without compressing it again. All-zero chunks are left out of the map, and holes in the input are never read.
//
// Exit codes: 0 done, 1 failure, 2 usage, 3 assemble found chunk files missing (stderr has one line per chunk,
// `missing chunk sha256:<hex>`: the caller fetches them and runs again), 4 a chunk file is corrupt.
// Every failure is one line on stderr.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const (
	exitFailure = 1
	exitUsage   = 2
	exitMissing = 3
	exitCorrupt = 4
)

// failure carries the exit code a caller acts on; its message is the stderr line.
type failure struct {
	code int
	msg  string
	// lines: msg is several lines on purpose (one per missing chunk); otherwise it is printed as one line.
	lines bool
}

func (f *failure) Error() string { return f.msg }

func fail(code int, format string, args ...any) error {
	return &failure{code: code, msg: fmt.Sprintf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	out, err := dispatch(args)
	if err == nil {
		enc := json.NewEncoder(stdout)
		if err = enc.Encode(out); err == nil {
			return 0
		}
	}
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{code: exitFailure, msg: err.Error()}
	}
	msg := f.msg
	if !f.lines {
		msg = strings.ReplaceAll(msg, "\n", " ") // a path may carry one: still one line
	}
	fmt.Fprintln(stderr, msg)
	return f.code
}

func dispatch(args []string) (any, error) {
	if len(args) == 0 {
		return nil, fail(exitUsage, "usage: snapflow-chunks split|assemble [flags]")
	}
	switch args[0] {
	case "split":
		opts, err := parseSplit(args[1:])
		if err != nil {
			return nil, err
		}
		return split(opts)
	case "assemble":
		opts, err := parseAssemble(args[1:])
		if err != nil {
			return nil, err
		}
		return assemble(opts)
	default:
		return nil, fail(exitUsage, "unknown command %q (split, assemble)", args[0])
	}
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the one stderr line comes from run()
	return fs
}

func parseSplit(args []string) (splitOptions, error) {
	fs := newFlags("split")
	var o splitOptions
	var prev string
	fs.StringVar(&o.in, "in", "", "file to split")
	fs.StringVar(&o.store, "store", "", "chunk directory")
	fs.StringVar(&prev, "prev", "", "map of the state this file came from")
	fs.Int64Var(&o.chunkBytes, "chunk", defaultChunkBytes, "chunk size in bytes")
	fs.Int64Var(&o.maxSize, "max-size", defaultMaxSize, "refuse a larger file")
	fs.IntVar(&o.owner, "owner", -1, "refuse a file another uid owns, or with another name (hard link)")
	if err := fs.Parse(args); err != nil {
		return o, fail(exitUsage, "split: %v", err)
	}
	if o.in == "" || o.store == "" || fs.NArg() > 0 {
		return o, fail(exitUsage, "usage: snapflow-chunks split --in FILE --store DIR [--prev PREV.json] [--chunk BYTES] [--max-size N]")
	}
	if o.chunkBytes < minChunkBytes || o.chunkBytes > maxChunkBytes {
		return o, fail(exitUsage, "split: --chunk must be between %d and %d", minChunkBytes, maxChunkBytes)
	}
	if o.maxSize <= 0 {
		return o, fail(exitUsage, "split: --max-size must be positive")
	}
	if prev != "" {
		m, err := readMap(prev)
		if err != nil {
			return o, err
		}
		o.prev = m
	}
	return o, nil
}

func parseAssemble(args []string) (assembleOptions, error) {
	fs := newFlags("assemble")
	var o assembleOptions
	var mapFile string
	fs.StringVar(&mapFile, "map", "", "map written by split")
	fs.StringVar(&o.store, "store", "", "chunk directory")
	fs.StringVar(&o.out, "out", "", "file to create")
	fs.IntVar(&o.uid, "uid", -1, "owner of the new file")
	fs.IntVar(&o.gid, "gid", -1, "group of the new file")
	fs.BoolVar(&o.into, "into", false, "fill an existing empty file of the map's size instead of creating one")
	if err := fs.Parse(args); err != nil {
		return o, fail(exitUsage, "assemble: %v", err)
	}
	if mapFile == "" || o.store == "" || o.out == "" || fs.NArg() > 0 {
		return o, fail(exitUsage, "usage: snapflow-chunks assemble --map MAP.json --store DIR --out FILE [--uid U --gid G]")
	}
	if (o.uid < 0) != (o.gid < 0) {
		return o, fail(exitUsage, "assemble: --uid and --gid go together")
	}
	m, err := readMap(mapFile)
	if err != nil {
		return o, err
	}
	o.m = m
	return o, nil
}
