package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// lazyTensors returns ts with the data of the even-numbered tensors and of
// the last (empty) one produced by WriteData in writes of at most chunk
// bytes, and appends to *calls the index of each tensor whose WriteData runs.
func lazyTensors(ts []WriteTensor, chunk int, calls *[]int) []WriteTensor {
	out := make([]WriteTensor, len(ts))
	for i, t := range ts {
		out[i] = t
		if i%2 == 1 && i != len(ts)-1 {
			continue
		}
		data := t.Data
		out[i].Data = nil
		out[i].WriteData = func(w io.Writer) error {
			*calls = append(*calls, i)
			for p := data; len(p) > 0; {
				n := min(chunk, len(p))
				if _, err := w.Write(p[:n]); err != nil {
					return err
				}
				p = p[n:]
			}
			return nil
		}
	}
	return out
}

// TestWriteDataSameBytes checks that data produced by WriteData, in writes
// of any size, gives the very file that the same data in memory gives, and
// that Write calls each WriteData once, in file order.
func TestWriteDataSameBytes(t *testing.T) {
	for _, align := range []uint64{0, 64, 1} {
		for _, chunk := range []int{1, 7, 1 << 20} {
			t.Run(fmt.Sprintf("alignment %d chunk %d", align, chunk), func(t *testing.T) {
				kvs, ts := allTypesKVs(), randomTensors(align+3)
				var want, got bytes.Buffer
				if err := Write(&want, kvs, ts, align); err != nil {
					t.Fatal(err)
				}
				var calls []int
				lazy := lazyTensors(ts, chunk, &calls)
				if err := Write(&got, kvs, lazy, align); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Errorf("file with WriteData tensors differs from the file with Data (%d vs %d bytes)", got.Len(), want.Len())
				}
				var wantCalls []int
				for i := range lazy {
					if lazy[i].WriteData != nil {
						wantCalls = append(wantCalls, i)
					}
				}
				if fmt.Sprint(calls) != fmt.Sprint(wantCalls) {
					t.Errorf("WriteData called for tensors %v, want %v", calls, wantCalls)
				}
			})
		}
	}
}

// TestWriteDataErrors checks that WriteData that writes too much, too
// little or fails is an error naming the tensor, and that WriteFile then
// leaves the old file alone and no temporary file behind.
func TestWriteDataErrors(t *testing.T) {
	errDisk := errors.New("disk on fire")
	writes := func(sizes ...int) func(io.Writer) error {
		return func(w io.Writer) error {
			for _, n := range sizes {
				if _, err := w.Write(make([]byte, n)); err != nil {
					return fmt.Errorf("wrapped: %w", err)
				}
			}
			return nil
		}
	}
	tests := []struct {
		name  string
		data  []byte
		write func(io.Writer) error
		want  string
		is    error // when set, errors.Is(err, is) must hold
	}{
		{"one write too long", nil, writes(20), `tensor 1 "t": WriteData wrote more than the 16 bytes of shape [4] of type f32`, nil},
		{"last write too long", nil, writes(8, 8, 1), `tensor 1 "t": WriteData wrote more than the 16 bytes`, nil},
		{"too long, error ignored", nil, func(w io.Writer) error { w.Write(make([]byte, 17)); return nil }, `WriteData wrote more than the 16 bytes`, nil},
		{"too short", nil, writes(8, 4), `tensor 1 "t": WriteData wrote 12 bytes, want 16 for shape [4] of type f32`, nil},
		{"nothing", nil, writes(), `WriteData wrote 0 bytes, want 16`, nil},
		{"fails", nil, func(w io.Writer) error { w.Write(make([]byte, 4)); return errDisk }, `tensor 1 "t": WriteData: disk on fire`, errDisk},
		{"both set", make([]byte, 16), writes(16), `tensor 1 "t": both Data and WriteData are set`, nil},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	if err := WriteFile(path, nil, randomTensors(1), 0); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := []WriteTensor{
				{Name: "first", Ne: []int64{2}, Type: quant.F32, Data: make([]byte, 8)},
				{Name: "t", Ne: []int64{4}, Type: quant.F32, Data: tt.data, WriteData: tt.write},
				{Name: "never", Ne: []int64{2}, Type: quant.F32, WriteData: func(io.Writer) error {
					t.Error("WriteData of the tensor after the failing one was called")
					return nil
				}},
			}
			err := Write(io.Discard, nil, ts, 0)
			if err == nil {
				t.Fatal("Write: no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Write error %q\ndoes not contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Write error %q does not wrap %q", err, tt.is)
			}
			err = WriteFile(path, nil, ts, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("WriteFile error %v, want one naming %s and containing %q", err, path, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("after a failed write the directory holds %v", entries)
			}
			if b, _ := os.ReadFile(path); !bytes.Equal(b, old) {
				t.Error("old file changed by a failed write")
			}
		})
	}
}

// TestWriteDataEmptyTensor checks that WriteData of a tensor with no data
// is called and must write nothing.
func TestWriteDataEmptyTensor(t *testing.T) {
	called := false
	ts := []WriteTensor{{Name: "e", Ne: []int64{0, 3}, Type: quant.F32, WriteData: func(io.Writer) error { called = true; return nil }}}
	var buf bytes.Buffer
	if err := Write(&buf, nil, ts, 0); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Error("WriteData not called")
	}
	f, err := parseBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 1 || f.Tensors[0].Size != 0 {
		t.Errorf("tensors %+v", f.Tensors)
	}
}

// TestAsyncWriter checks that asyncWriter passes on every byte, in order,
// whatever the sizes of the writes, and that a write error stops it and is
// returned by Write and Close.
func TestAsyncWriter(t *testing.T) {
	data := make([]byte, 100_003)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	for _, tc := range []struct {
		size, n int
		chunks  []int // write sizes, repeated
	}{
		{16, 2, []int{1}},
		{16, 2, []int{16}},
		{16, 3, []int{5, 33, 0, 16, 17}},
		{1 << 10, 8, []int{70_000}},
		{1 << 20, 8, []int{100_003}},
	} {
		t.Run(fmt.Sprint(tc.size, tc.n, tc.chunks), func(t *testing.T) {
			var out bytes.Buffer
			a := newAsyncWriter(&out, tc.size, tc.n)
			for p, i := data, 0; len(p) > 0; i++ {
				k := min(tc.chunks[i%len(tc.chunks)], len(p))
				if n, err := a.Write(p[:k]); n != k || err != nil {
					t.Fatalf("Write(%d bytes) = %d, %v", k, n, err)
				}
				p = p[k:]
			}
			if err := a.Flush(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Errorf("wrote %d bytes, not the %d given", out.Len(), len(data))
			}
			if err := a.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := a.Write([]byte{1}); err == nil {
				t.Error("Write after Close: no error")
			}
		})
	}

	errFull := errors.New("no space left on device")
	a := newAsyncWriter(&failAfter{left: 40, err: errFull}, 16, 2)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		_, werr = a.Write(make([]byte, 10))
	}
	if !errors.Is(werr, errFull) {
		t.Errorf("Write after the underlying writer failed: %v, want %v", werr, errFull)
	}
	if err := a.Close(); !errors.Is(err, errFull) {
		t.Errorf("Close: %v, want %v", err, errFull)
	}
}

// failAfter accepts left bytes, then fails every write with err.
type failAfter struct {
	left int
	err  error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n := f.left
		f.left = 0
		return n, f.err
	}
	f.left -= len(p)
	return len(p), nil
}
