package forward

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/quant"
)

// Element access for graph tensors: contiguous rows where ggml has them,
// strided reads otherwise.

// alloc gives a non-view tensor its memory.
func (n *node) alloc() {
	if n.viewSrc != nil || n.buf != nil {
		return
	}
	b := &buffer{}
	cnt := n.nelements()
	switch n.typ {
	case quant.F32:
		b.f32 = make([]float32, cnt)
	case quant.F16:
		b.f16 = make([]uint16, cnt)
	case quant.I32:
		b.i32 = make([]int32, cnt)
	case quant.I64:
		b.i64 = make([]int64, cnt)
	default:
		panic(fmt.Sprintf("forward: cannot allocate a %s activation %q", n.typ, n.name))
	}
	n.buf = b
}

// f32Weight gives an F32 model tensor its float32 buffer: the mapped bytes
// in place on a little-endian host (the weights are never written), else a
// decoded copy, made once.
func (n *node) f32Weight() {
	if n.buf != nil || n.weight == nil {
		return
	}
	cnt := n.nelements()
	if v := viewF32(n.weight); int64(len(v)) >= cnt {
		n.buf = &buffer{f32: v[:cnt]}
		return
	}
	b := &buffer{f32: make([]float32, cnt)}
	for i := range b.f32 {
		b.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(n.weight[4*i:]))
	}
	n.buf = b
}

// base returns the buffer behind n and n's element offset in it.
func (n *node) base() (*buffer, int64) {
	s, off := n.storage()
	if s.weight != nil && s.buf == nil && s.typ == quant.F32 {
		s.f32Weight()
	}
	return s.buf, off / typeSize(n.typ)
}

// elemOffset is the element offset (in units of the type size) of
// (i0, i1, i2, i3) relative to n's first element.
func (n *node) elemOffset(i0, i1, i2, i3 int64) int64 {
	ts := typeSize(n.typ)
	return (i0*n.nb[0] + i1*n.nb[1] + i2*n.nb[2] + i3*n.nb[3]) / ts
}

// rowF32 returns row (i1, i2, i3) of an F32 tensor: a slice of its memory
// when the row is contiguous, else a copy into tmp.
func (n *node) rowF32(i1, i2, i3 int64, tmp []float32) []float32 {
	b, off := n.base()
	o := off + n.elemOffset(0, i1, i2, i3)
	if n.nb[0] == 4 {
		return b.f32[o : o+n.ne[0]]
	}
	if int64(cap(tmp)) < n.ne[0] {
		tmp = make([]float32, n.ne[0])
	}
	tmp = tmp[:n.ne[0]]
	st := n.nb[0] / 4
	for i := range tmp {
		tmp[i] = b.f32[o+int64(i)*st]
	}
	return tmp
}

// rowF16 returns row (i1, i2, i3) of an F16 tensor (rows must be
// contiguous, as ggml requires for its sources).
func (n *node) rowF16(i1, i2, i3 int64) []uint16 {
	b, off := n.base()
	o := off + n.elemOffset(0, i1, i2, i3)
	return b.f16[o : o+n.ne[0]]
}

// at reads element (i0, i1, i2, i3) as float32 (F32, F16, I32 tensors).
func (n *node) at(i0, i1, i2, i3 int64) float32 {
	b, off := n.base()
	o := off + n.elemOffset(i0, i1, i2, i3)
	switch n.typ {
	case quant.F32:
		return b.f32[o]
	case quant.F16:
		if b.f32 != nil {
			return b.f32[o]
		}
		return f16Table[b.f16[o]]
	case quant.I32:
		return float32(b.i32[o])
	case quant.I64:
		return float32(b.i64[o])
	}
	return float32(math.NaN())
}

// toF32 copies n's elements in ggml order (ne[0] fastest) as float32: the
// data of a recorded tensor, views included.
func (n *node) toF32() []float32 {
	out := make([]float32, n.nelements())
	k := 0
	for i3 := int64(0); i3 < n.ne[3]; i3++ {
		for i2 := int64(0); i2 < n.ne[2]; i2++ {
			for i1 := int64(0); i1 < n.ne[1]; i1++ {
				if n.typ == quant.F32 && n.nb[0] == 4 {
					row := n.rowF32(i1, i2, i3, nil)
					copy(out[k:], row)
					k += len(row)
					continue
				}
				if n.typ == quant.F16 && n.nb[0] == 2 {
					if b, _ := n.base(); b.f32 == nil && b.f16 != nil {
						row := n.rowF16(i1, i2, i3)
						dst := out[k : k+len(row)]
						for j := fromF16Prefix(dst, row); j < len(row); j++ {
							dst[j] = f16Table[row[j]]
						}
						k += len(row)
						continue
					}
				}
				for i0 := int64(0); i0 < n.ne[0]; i0++ {
					out[k] = n.at(i0, i1, i2, i3)
					k++
				}
			}
		}
	}
	return out
}

// weightRow returns the raw bytes of row (i1, i2, i3) of a model tensor.
func (n *node) weightRow(i1, i2, i3 int64) []byte {
	rb := n.nb[1]
	o := i1*n.nb[1] + i2*n.nb[2] + i3*n.nb[3]
	return n.weight[o : o+rb]
}
