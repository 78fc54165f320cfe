package tokenizer

import (
	"errors"
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/model/gguf"
)

// GGUF keys of the tokenizer.
const (
	KeyTokenizerModel  = "tokenizer.ggml.model"
	KeyTokenizerPre    = "tokenizer.ggml.pre"
	KeyTokenizerTokens = "tokenizer.ggml.tokens"
	KeyTokenizerScores = "tokenizer.ggml.scores"
	KeyTokenizerTypes  = "tokenizer.ggml.token_type"
	KeyTokenizerMerges = "tokenizer.ggml.merges"
	keyAddBOS          = "tokenizer.ggml.add_bos_token"
	keyAddEOS          = "tokenizer.ggml.add_eos_token"
	keyAddSep          = "tokenizer.ggml.add_sep_token"
	keyAddSpacePrefix  = "tokenizer.ggml.add_space_prefix"
	keyRemoveExtraWS   = "tokenizer.ggml.remove_extra_whitespaces"
	keyGeneralName     = "general.name"
)

// specialKey is the GGUF key of a special token id named as in
// Vocab.Special.
func specialKey(name string) string { return "tokenizer.ggml." + name + "_token_id" }

// VocabFromGGUF reads the tokenizer.ggml.* metadata of f into a Vocab.
// Absent optional keys stay nil so that NewTokenizer applies llama.cpp's
// defaults.
func VocabFromGGUF(f *gguf.File) (*Vocab, error) {
	if f == nil {
		return nil, errors.New("tokenizer: nil GGUF file")
	}
	wrap := func(key string, err error) error {
		return fmt.Errorf("tokenizer: %s: %s: %w", f.Path, key, err)
	}
	v := &Vocab{}
	var err error
	if v.Model, err = f.String(KeyTokenizerModel); err != nil {
		return nil, wrap(KeyTokenizerModel, err)
	}
	if f.Has(KeyTokenizerPre) {
		if v.Pre, err = f.String(KeyTokenizerPre); err != nil {
			return nil, wrap(KeyTokenizerPre, err)
		}
	}
	if f.Has(keyGeneralName) {
		if v.Name, err = f.String(keyGeneralName); err != nil {
			return nil, wrap(keyGeneralName, err)
		}
	}
	if f.Has(gguf.KeyArchitecture) {
		if v.Architecture, err = f.String(gguf.KeyArchitecture); err != nil {
			return nil, wrap(gguf.KeyArchitecture, err)
		}
	}
	if v.Model == "no_vocab" || v.Model == "none" {
		if key := v.Architecture + ".vocab_size"; f.Has(key) {
			n, err := f.Uint(key)
			if err != nil {
				return nil, wrap(key, err)
			}
			if n > math.MaxInt32 {
				return nil, wrap(key, fmt.Errorf("vocabulary size %d too large", n))
			}
			v.VocabSize = uint32(n)
		}
		return v, nil
	}
	if v.Tokens, err = f.Strings(KeyTokenizerTokens); err != nil {
		return nil, wrap(KeyTokenizerTokens, err)
	}
	if f.Has(KeyTokenizerScores) {
		if v.Scores, err = f.Float32s(KeyTokenizerScores); err != nil {
			return nil, wrap(KeyTokenizerScores, err)
		}
		if len(v.Scores) != len(v.Tokens) {
			return nil, wrap(KeyTokenizerScores, fmt.Errorf("%d scores for %d tokens", len(v.Scores), len(v.Tokens)))
		}
	}
	if f.Has(KeyTokenizerTypes) {
		types, err := f.Int32s(KeyTokenizerTypes)
		if err != nil {
			return nil, wrap(KeyTokenizerTypes, err)
		}
		if len(types) != len(v.Tokens) {
			return nil, wrap(KeyTokenizerTypes, fmt.Errorf("%d token types for %d tokens", len(types), len(v.Tokens)))
		}
		v.Types = make([]TokenType, len(types))
		for i, t := range types {
			v.Types[i] = TokenType(t)
		}
	}
	if f.Has(KeyTokenizerMerges) {
		m, err := f.Strings(KeyTokenizerMerges)
		if err != nil {
			return nil, wrap(KeyTokenizerMerges, err)
		}
		v.Merges = append([]string{}, m...)
	}
	for _, name := range specialKeys {
		key := specialKey(name)
		if !f.Has(key) {
			continue
		}
		id, err := f.Uint(key)
		if err != nil {
			return nil, wrap(key, err)
		}
		if id > math.MaxUint32 {
			return nil, wrap(key, fmt.Errorf("token id %d does not fit uint32", id))
		}
		if v.Special == nil {
			v.Special = map[string]uint32{}
		}
		v.Special[name] = uint32(id)
	}
	for _, b := range []struct {
		key string
		dst **bool
	}{
		{keyAddBOS, &v.AddBOS},
		{keyAddEOS, &v.AddEOS},
		{keyAddSep, &v.AddSep},
		{keyAddSpacePrefix, &v.AddSpacePrefix},
		{keyRemoveExtraWS, &v.RemoveExtraWhitespaces},
	} {
		if !f.Has(b.key) {
			continue
		}
		x, err := f.Bool(b.key)
		if err != nil {
			return nil, wrap(b.key, err)
		}
		*b.dst = &x
	}
	return v, nil
}

// KVs returns the GGUF metadata that stores v (the tokenizer.ggml.* keys,
// plus general.name when set), for writing with WriteFile. A model file also
// needs general.architecture and that architecture's hyperparameters.
func (v *Vocab) KVs() []gguf.KV {
	kvs := []gguf.KV{gguf.NewKV(KeyTokenizerModel, v.Model)}
	if v.Pre != "" {
		kvs = append(kvs, gguf.NewKV(KeyTokenizerPre, v.Pre))
	}
	if v.Tokens != nil {
		kvs = append(kvs, gguf.NewKV(KeyTokenizerTokens, append([]string{}, v.Tokens...)))
	}
	if v.Scores != nil {
		kvs = append(kvs, gguf.NewKV(KeyTokenizerScores, append([]float32{}, v.Scores...)))
	}
	if v.Types != nil {
		types := make([]int32, len(v.Types))
		for i, t := range v.Types {
			types[i] = int32(t)
		}
		kvs = append(kvs, gguf.NewKV(KeyTokenizerTypes, types))
	}
	if v.Merges != nil {
		kvs = append(kvs, gguf.NewKV(KeyTokenizerMerges, append([]string{}, v.Merges...)))
	}
	for _, name := range specialKeys {
		if id, ok := v.Special[name]; ok {
			kvs = append(kvs, gguf.NewKV(specialKey(name), id))
		}
	}
	for _, b := range []struct {
		key string
		v   *bool
	}{
		{keyAddBOS, v.AddBOS},
		{keyAddEOS, v.AddEOS},
		{keyAddSep, v.AddSep},
		{keyAddSpacePrefix, v.AddSpacePrefix},
		{keyRemoveExtraWS, v.RemoveExtraWhitespaces},
	} {
		if b.v != nil {
			kvs = append(kvs, gguf.NewKV(b.key, *b.v))
		}
	}
	if v.Name != "" {
		kvs = append(kvs, gguf.NewKV(keyGeneralName, v.Name))
	}
	return kvs
}
