package diagnose

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/layerdiff/layerdiff/pkg/compare"
)

// ---- GET_ROWS: tokens ----

// tokenHints compares the reference's embedding rows with the model's
// embeddings of layerdiff's token ids: all rows one position later (a BOS
// or other extra token in front on one side) or some positions differing
// (token-id mismatch, naming the reference's ids when it can find them).
func tokenHints(in *Input) []compare.Hint {
	if in.Weights == nil || len(in.Tokens) == 0 {
		return nil
	}
	wname := "token_embd.weight"
	if len(in.InputNames) > 0 && strings.HasSuffix(in.InputNames[0], ".weight") {
		wname = in.InputNames[0]
	}
	wne, ok := in.Weights.Shape(wname)
	if !ok || len(wne) < 2 || wne[0] != in.Ne[0] || wne[1] <= 0 {
		return nil
	}
	n, nv := int(wne[0]), wne[1]
	o := in.Tokens
	for _, id := range o {
		if id < 0 || int64(id) >= nv {
			return nil
		}
	}
	Tr, To := len(in.Ref)/n, len(o)
	emb := map[int32][]float32{}
	embRow := func(id int32) []float32 {
		if id < 0 || int64(id) >= nv {
			return nil
		}
		if r, ok := emb[id]; ok {
			return r
		}
		r := make([]float32, n)
		if err := in.Weights.Row(wname, int(id), r); err != nil {
			r = nil
		}
		emb[id] = r
		return r
	}
	refRow := func(t int) []float32 { return in.Ref[t*n : (t+1)*n] }
	rowRes := func(t int, id int32) float64 {
		e := embRow(id)
		if e == nil {
			return math.NaN()
		}
		return nmseOf(e, refRow(t))
	}
	// match counts reference rows t that are the embedding of layerdiff's
	// token t+delta, with the mean residual of the matches and the mean
	// nmse of the same rows against layerdiff's token t.
	type shiftRes struct {
		matched, total int
		res, base      float64
		miss           []int
	}
	shift := func(delta int) shiftRes {
		var s shiftRes
		for t := 0; t < Tr; t++ {
			u := t + delta
			if u < 0 || u >= To {
				continue
			}
			s.total++
			r := rowRes(t, o[u])
			if r <= rowMatchMax {
				s.matched++
				s.res += r
			} else {
				s.miss = append(s.miss, t)
			}
			if t < To {
				s.base += rowRes(t, o[t])
			}
		}
		if s.matched > 0 {
			s.res /= float64(s.matched)
		}
		if s.total > 0 {
			s.base /= float64(s.total)
		}
		return s
	}
	s0 := shift(0)
	if s0.total > 0 && s0.matched == s0.total {
		return nil
	}
	bos := in.BOS
	for _, delta := range []int{-1, 1} {
		s := shift(delta)
		if s.total < 1 || s.matched != s.total || (s.total < 2 && Tr == To) {
			continue
		}
		h := compare.Hint{Value: compare.Float(-delta), NMSE: compare.Float(s.res), Baseline: compare.Float(s.base)}
		if delta < 0 {
			// reference row t = layerdiff's token t−1: the reference has an
			// extra token in front
			if bos >= 0 && Tr > 0 && rowRes(0, bos) <= rowMatchMax && (To == 0 || o[0] != bos) {
				h.Kind = HintBOS
				h.Text = fmt.Sprintf("the reference starts with BOS (id %d) and layerdiff's tokens do not: every later reference row t is the embedding of layerdiff's token t−1 (%d rows, nmse %s): add the BOS (drop --no-bos)", bos, s.total, fnmse(s.res))
			} else {
				h.Kind = HintTokenShift
				h.Text = fmt.Sprintf("the reference has one more token in front: every reference row t ≥ 1 is the embedding of layerdiff's token t−1 (%d rows, nmse %s): the token ids are shifted by one", s.total, fnmse(s.res))
			}
		} else {
			if bos >= 0 && o[0] == bos {
				h.Kind = HintBOS
				h.Text = fmt.Sprintf("layerdiff's tokens start with BOS (id %d) and the reference's do not: every reference row t is the embedding of layerdiff's token t+1 (%d rows, nmse %s): the reference was made without BOS (use --no-bos)", bos, s.total, fnmse(s.res))
			} else {
				h.Kind = HintTokenShift
				h.Text = fmt.Sprintf("layerdiff has one more token in front: every reference row t is the embedding of layerdiff's token t+1 (%d rows, nmse %s): the token ids are shifted by one", s.total, fnmse(s.res))
			}
		}
		return []compare.Hint{h}
	}
	if s0.total == 0 || s0.matched*2 < s0.total || len(s0.miss) == 0 {
		return nil
	}
	// some positions differ: name the reference's ids there
	miss := s0.miss
	ids := make([]int32, len(miss))
	for i := range ids {
		ids[i] = -1
	}
	if len(in.RefTokens) == Tr {
		for i, t := range miss {
			ids[i] = in.RefTokens[t]
		}
	} else if nv*int64(n) <= maxVocabScan {
		look := miss[:min(len(miss), 4)]
		row := make([]float32, n)
		for id := int64(0); id < nv; id++ {
			if in.Weights.Row(wname, int(id), row) != nil {
				break
			}
			for i, t := range look {
				if ids[i] < 0 && nmseOf(row, refRow(t)) <= rowMatchMax {
					ids[i] = int32(id)
				}
			}
		}
	}
	var pos, ours, theirs []string
	for i, t := range miss {
		if i == 8 {
			pos = append(pos, "…")
			break
		}
		pos = append(pos, strconv.Itoa(t))
		if t < To {
			ours = append(ours, strconv.Itoa(int(o[t])))
		}
		if ids[i] >= 0 {
			theirs = append(theirs, strconv.Itoa(int(ids[i])))
		} else {
			theirs = append(theirs, "?")
		}
	}
	text := fmt.Sprintf("token-id mismatch at positions %s (%d of %d): the reference's rows there are not the embeddings of layerdiff's ids %s", strings.Join(pos, ", "), len(miss), s0.total, strings.Join(ours, ", "))
	if slices.ContainsFunc(ids, func(id int32) bool { return id >= 0 }) {
		text += "; they are the embeddings of ids " + strings.Join(theirs, ", ")
	}
	text += fmt.Sprintf(" (the other %d rows match, nmse %s)", s0.matched, fnmse(s0.res))
	if Tr != To {
		text += fmt.Sprintf("; the reference has %d tokens, layerdiff %d", Tr, To)
	}
	return []compare.Hint{{Kind: HintTokenMismatch, Text: text, Value: compare.Float(len(miss)), NMSE: compare.Float(s0.res), Baseline: compare.Float(s0.base)}}
}
