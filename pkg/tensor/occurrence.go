package tensor

// SplitOccurrence splits an explicit occurrence off a tensor name:
// "Qcur-0#2" is ("Qcur-0", 2), the second node named Qcur-0 in graph order
// (the key layerdiff's dumps give it). Names without a "#N" suffix, N a
// decimal number from 1 with at most 6 digits, return (name, 0). A '#' anywhere else
// is part of the name.
func SplitOccurrence(name string) (string, int) {
	i := len(name)
	for i > 0 && name[i-1] >= '0' && name[i-1] <= '9' {
		i--
	}
	if i == len(name) || i == 0 || name[i-1] != '#' || len(name)-i > 6 || i == 1 {
		return name, 0
	}
	n := 0
	for _, c := range name[i:] {
		n = n*10 + int(c-'0')
	}
	if n == 0 {
		return name, 0
	}
	return name[:i-1], n
}
