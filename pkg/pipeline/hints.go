package pipeline

import (
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/diagnose"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/model/gguf"
	"github.com/layerdiff/layerdiff/pkg/model/quant"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// fileWeights reads weights from a GGUF file.
type fileWeights struct{ f *gguf.File }

func (w fileWeights) Shape(name string) ([]int64, bool) {
	ti, ok := w.f.Tensor(name)
	if !ok {
		return nil, false
	}
	return ti.Ne, true
}

func (w fileWeights) Row(name string, row int, dst []float32) error {
	ti, ok := w.f.Tensor(name)
	if !ok {
		return fmt.Errorf("%s: no tensor %q", w.f.Path, name)
	}
	if len(ti.Ne) == 0 || int64(len(dst)) != ti.Ne[0] {
		return fmt.Errorf("%s: tensor %q: row of %d values, want %v[0]", w.f.Path, name, len(dst), ti.Ne)
	}
	data, err := w.f.TensorData(ti)
	if err != nil {
		return err
	}
	if err := quant.DequantizeRow(ti.Type, data, row, dst); err != nil {
		return fmt.Errorf("%s: tensor %q: %w", w.f.Path, name, err)
	}
	return nil
}

// bosID is the model's tokenizer.ggml.bos_token_id, −1 when absent.
func bosID(f *gguf.File) int32 {
	if f == nil || !f.Has("tokenizer.ggml.bos_token_id") {
		return -1
	}
	v, err := f.Int("tokenizer.ggml.bos_token_id")
	if err != nil || v < 0 || v > math.MaxInt32 {
		return -1
	}
	return int32(v)
}

// refInputs resolves the source names of the reference node key to the
// latest earlier nodes of those names and loads the ones with full data.
func refInputs(src reference.Source, key string) ([]string, []*tensor.Tensor) {
	nodes := src.Nodes()
	at := -1
	for i := range nodes {
		if nodes[i].Key == key {
			at = i
			break
		}
	}
	if at < 0 || len(nodes[at].Src) == 0 {
		return nil, nil
	}
	names := append([]string(nil), nodes[at].Src...)
	ts := make([]*tensor.Tensor, len(names))
	for k, name := range names {
		for j := at - 1; j >= 0; j-- {
			if nodes[j].Name != name && nodes[j].Key != name {
				continue
			}
			if nodes[j].Data == reference.FullData {
				if t, err := src.Load(nodes[j].Key); err == nil && t != nil && t.Data != nil {
					ts[k] = t
				}
			}
			break
		}
	}
	return names, ts
}

// hints runs Hints on reference row i with what the blamer knows: isolated
// is layerdiff's output from the reference's inputs (nil to test the
// normal run's output).
func (b *isolationBlamer) hints(env *compare.BlameEnv, i int, isolated []float32) []compare.Hint {
	if i < 0 || i >= len(env.Rows) {
		return nil
	}
	row := env.Rows[i]
	rt, err := env.Ref.Tensor(row.Key)
	if err != nil || rt == nil || rt.Data == nil {
		return nil
	}
	in := diagnose.Input{Name: row.Name, Op: row.Op, Ne: rt.Ne, Ref: rt.Data, Isolated: isolated, Tokens: b.tokens, BOS: -1, T: env.Tokens}
	if ours, err := env.Counterpart(i); err == nil && ours != nil && ours.Data != nil {
		in.Ours = ours
		if in.Op == "" {
			in.Op = ours.Op
		}
	}
	if rs, ok := env.Ref.(*refSide); ok {
		in.InputNames, in.Inputs = refInputs(rs.src, row.Key)
		in.RefTokens = rs.src.Describe().Tokens
	}
	withModel(&in, b.model)
	return diagnose.Hints(in)
}

// withModel gives a diagnosis the model's hyperparameters, weights and BOS
// token, when there is a model.
func withModel(in *diagnose.Input, m *forward.Model) {
	if m == nil {
		return
	}
	in.Hparams = &m.Hparams
	in.Weights = fileWeights{m.File}
	in.BOS = bosID(m.File)
}
