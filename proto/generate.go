// Package proto holds the event schema of the supplier accountability ledger
// (accountability/v1/events.proto) and the command that regenerates its Go
// code. The generated code is committed; CI regenerates it and fails when the
// committed copy is stale.
//
// Regenerate with protoc (Debian: protobuf-compiler) and protoc-gen-go at the
// version go.mod pins:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go
//	go generate ./proto/...
package proto

//go:generate protoc --go_out=. --go_opt=paths=source_relative accountability/v1/events.proto
