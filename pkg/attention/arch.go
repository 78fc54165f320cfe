package attention

import (
	"fmt"
	"math"

	"github.com/layerdiff/layerdiff/pkg/reference"
)

// archKQScale is the softmax scale of the architectures whose builders pass
// build_attn a kq_scale that is neither 1/√head_dim nor a metadata key:
// phi3 scales Q by 1/√head_dim itself (Qcur-L, SCALE) and attends with
// kq_scale 1 (src/models/phi3.cpp); gemma2 and gemma3 scale Q by
// f_attention_scale (llm_build_gemma2_iswa, llm_build_gemma3).
var archKQScale = map[string]float64{
	"phi3":   1,
	"gemma2": 1,
	"gemma3": 1,
}

// kqScale is the softmax scale of a layer of head size d and how it was
// chosen: the architecture's (archKQScale), else the model's
// attention.scale, else 1/√d.
func kqScale(d int64, hp map[string]float64, arch string) (float64, string) {
	if sc, ok := archKQScale[arch]; ok {
		return sc, fmt.Sprintf("scale %g (%s's attention, its Q scaled before)", sc, arch)
	}
	if sc, ok := hp["attention.scale"]; ok && sc > 0 {
		return sc, fmt.Sprintf("scale %g (the model's attention.scale)", sc)
	}
	return 1 / math.Sqrt(float64(d)), fmt.Sprintf("scale 1/√%d (the dump does not record FLASH_ATTN_EXT's op params)", d)
}

// archOf is the architecture a dump's manifest records, "" for other
// sources.
func archOf(src reference.Source) string {
	if d, ok := src.(*reference.Dump); ok && d.Manifest != nil {
		return d.Manifest.Model.Architecture
	}
	return ""
}
