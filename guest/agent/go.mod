module snapflow.local/guest/agent

go 1.22
