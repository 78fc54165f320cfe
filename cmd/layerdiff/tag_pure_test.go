//go:build !llamacpp

package main

// withLlama tells the CLI tests whether this build has the in-build
// llama.cpp (and so a working `layerdiff dump`).
const withLlama = false
