module snapflow.local/tools/chunks

go 1.22

require github.com/klauspost/compress v1.17.11
