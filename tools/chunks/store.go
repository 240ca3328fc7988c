package main

import (
	"os"
	"path/filepath"
)

func checkStore(store string) error {
	st, err := os.Lstat(store)
	if err != nil {
		return fail(exitFailure, "store: %v", err)
	}
	if !st.IsDir() {
		return fail(exitFailure, "store %s is not a directory", store)
	}
	return nil
}

// blobPresent: a chunk file of the expected length is there. Its content is checked where it is used (assemble, and
// the registry on upload), not here: this is the cheap test that lets split skip compressing an unchanged chunk.
func blobPresent(store, blob string, size int64) bool {
	st, err := os.Lstat(blobFile(store, blob))
	return err == nil && st.Mode().IsRegular() && st.Size() == size
}

// putBlob writes a chunk file whole or not at all: a temporary file in the store, renamed over its name. Not synced:
// the store is a cache, written while a guest is paused, and a chunk torn by a host crash fails its digest check
// where it is used (assemble, the registry on upload). A file already there under that name has that content (the name is its digest). Reports whether it wrote.
func putBlob(store, blob string, data []byte) (bool, error) {
	path := blobFile(store, blob)
	if blobPresent(store, blob, int64(len(data))) {
		return false, nil
	}
	tmp, err := os.CreateTemp(store, ".tmp-*") // mode 0600
	if err != nil {
		return false, fail(exitFailure, "store: %v", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return false, fail(exitFailure, "store %s: %v", filepath.Base(path), err)
	}
	return true, nil
}
