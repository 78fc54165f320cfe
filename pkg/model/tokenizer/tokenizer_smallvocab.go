package tokenizer

import (
	"fmt"
	"strings"
)

// smallVocabAlphabet is the order in which SmallVocab admits single
// characters after "▁": English letter frequency, then capitals, digits
// and punctuation. Characters left out are spelled with byte tokens.
const smallVocabAlphabet = "etaoinshrdlcumwfgypbvkjxqz,.TIASHWOMBCDEFGLNPRUVYJKQXZ0123456789'\"-?!:;()"

// smallVocabCorpus is the text SmallVocab learns its merges from.
const smallVocabCorpus = `Hello world, this is a test of the tokenizer.
The quick brown fox jumps over the lazy dog.
Once upon a time there was a model that could read and write.
It was trained on a lot of text, and it learned to predict the next token.
The first layer of the network turns each token into a vector.
Then attention lets every position look at the ones before it.
The feed forward part of each block mixes the features of one position.
At the end the model gives a score to every word in the vocabulary.
We compare these scores with the ones from another engine to find where they differ.
When the numbers agree to many digits, the two engines compute the same thing.
When they do not, the first tensor that differs tells us where to look.
This is how we test that our forward pass matches the reference one.
Please write a short story about a robot who learns to paint.
What is the capital of France? The capital of France is Paris.
Tell me how to make a cup of tea, and then tell me why it is good.
I think that the answer is in the question, and the question is in the answer.
They said that the weather would be nice, but it rained all day long.
She walked into the room and sat down at the table with her friends.
He wanted to know what time it was, so he looked at the clock on the wall.
There are many ways to solve a problem, and some of them are better than others.
In the beginning the program prints hello, and in the end it prints goodbye.
You can run the tests again, and they should pass every time you run them.
The results of the experiment were interesting, and we will report them soon.
Let us count the tokens in this sentence and see how many there are.`

// SmallVocab returns a deterministic SentencePiece-style ("llama")
// vocabulary of n tokens (n >= 300) for fixtures: "<unk>", "<s>", "</s>",
// the 256 byte tokens <0x00>..<0xFF>, single characters (▁ and common
// English letters, digits and punctuation), then pieces learnt by BPE merges
// over a small built-in English text, scored so that SentencePiece merging
// replays those merges. Typical English prompts come out as several tokens
// per sentence; other characters fall back to byte tokens. If the text runs
// out of merges, the rest are unused tokens "<unused_N>".
//
// It panics when n < 300 (a programming error). Written to GGUF with KVs
// (and general.architecture plus that architecture's hyperparameters),
// llama.cpp loads it as a "llama" vocabulary.
func SmallVocab(n int) *Vocab {
	if n < 300 {
		panic(fmt.Sprintf("model.SmallVocab(%d): need at least 300 tokens", n))
	}
	v := &Vocab{
		Model:   "llama",
		Pre:     "default",
		Special: map[string]uint32{"bos": 1, "eos": 2, "unknown": 0},
		Name:    "small-vocab",
	}
	seen := map[string]bool{}
	add := func(text string, score float32, typ TokenType) bool {
		if len(v.Tokens) >= n || seen[text] {
			return false
		}
		seen[text] = true
		v.Tokens = append(v.Tokens, text)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
		return true
	}
	add("<unk>", 0, TokenUnknown)
	add("<s>", 0, TokenControl)
	add("</s>", 0, TokenControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, TokenByte)
	}
	// Single characters score below every merge, as in LLaMA's vocabulary.
	alphabet := append([]string{"\u2581"}, strings.Split(smallVocabAlphabet, "")...)
	for i, c := range alphabet {
		add(c, -1e4-float32(i), TokenNormal)
	}

	// BPE over the corpus words, each prefixed with ▁ as SentencePiece
	// escapes spaces. Pairs are counted over distinct words weighted by
	// frequency; ties go to the lexicographically smallest pair.
	freq := map[string]int{}
	var order []string
	for _, w := range strings.Fields(smallVocabCorpus) {
		w = "\u2581" + w
		if freq[w] == 0 {
			order = append(order, w)
		}
		freq[w]++
	}
	words := make([][]string, len(order))
	for i, w := range order {
		for _, r := range w {
			words[i] = append(words[i], string(r))
		}
	}
	for merge := 0; len(v.Tokens) < n; merge++ {
		counts := map[[2]string]int{}
		for i, syms := range words {
			for j := 1; j < len(syms); j++ {
				if seen[syms[j-1]] && seen[syms[j]] {
					counts[[2]string{syms[j-1], syms[j]}] += freq[order[i]]
				}
			}
		}
		var best [2]string
		bestN := 0
		for p, c := range counts {
			if c > bestN || c == bestN && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bestN = p, c
			}
		}
		if bestN < 1 {
			break
		}
		joined := best[0] + best[1]
		add(joined, -float32(merge), TokenNormal)
		for i, syms := range words {
			out := syms[:0]
			for j := 0; j < len(syms); j++ {
				if j+1 < len(syms) && syms[j] == best[0] && syms[j+1] == best[1] {
					out = append(out, joined)
					j++
					continue
				}
				out = append(out, syms[j])
			}
			words[i] = out
		}
	}
	for i := 0; len(v.Tokens) < n; i++ {
		add(fmt.Sprintf("<unused_%d>", i), 0, TokenUnused)
	}
	return v
}
