//go:build amd64 && !purego

package forward

//go:noescape
func k8Row2AVX2(nb int, meta, delta *k8BlockMeta, ncol int, y *[4]*byte, acc, acc2 *[4][8]float32)

// k8Row2Acc is k8RowAcc with the IQ1_M delta lanes (delta: the same
// blocks with the delta signs as values) into acc2, from the same
// activation loads (dot_iq_amd64.s).
func k8Row2Acc(meta, delta []k8BlockMeta, y *[4][]byte, ncol int, acc, acc2 *[4][8]float32) bool {
	nb := len(meta)
	p, ok := q8KColumns(y, ncol, nb)
	if !ok || len(delta) != nb {
		return false
	}
	k8Row2AVX2(nb, &meta[0], &delta[0], ncol, p, acc, acc2)
	return true
}
