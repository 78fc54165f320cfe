// Package reference reads and writes the reference activations that layerdiff
// compares its own forward pass against.
//
// Every kind of reference is opened with [Open] and seen through one
// interface, [Source]:
//
//   - layerdiff dump directories: manifest.json plus one .npy file per graph
//     node ([ReadManifest], [Manifest.Write]; the format is documented in
//     docs/dump-format.md);
//   - directories of .npy files without a manifest, as a third-party engine
//     might write them (file name = tensor name);
//   - llama.cpp eval-callback / llama-debug text logs, which show only the
//     first and last elements of each dimension and a sum ([ParseLog]; the
//     formats are documented in docs/log-formats.md);
//   - llama-debug --save-logits output directories (last-token logits and the
//     prompt's token ids).
//
// Readers never trust sizes: every count, shape and length is checked against
// the bytes actually present before anything is allocated, and errors name
// the file and the line or byte offset where the input went wrong
// ([FormatError], which matches [ErrFormat] with errors.Is). Damage that
// leaves part of a file usable — a text log cut short by llama.cpp's
// asynchronous logger, garbage between tensors — becomes a warning in
// [Info.Warnings], not an error.
package reference
