//go:build !amd64 || purego

package forward

func k8Row2Acc(meta, delta []k8BlockMeta, y *[4][]byte, ncol int, acc, acc2 *[4][8]float32) bool {
	return false
}
