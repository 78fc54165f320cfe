package forward

import "math/bits"

// sortArgs sorts s as libstdc++'s std::sort does (bits/stl_algo.h:
// __introsort_loop with the median of three moved to the front and an
// unguarded partition, heap sort past 2*log2(n) levels, then
// __final_insertion_sort with the threshold 16), so that equal keys end
// in the order ggml's ARGSORT leaves them. less is the comparator.
func sortArgs(s []int32, less func(a, b int32) bool) {
	n := len(s)
	if n < 2 {
		return
	}
	introsortLoop(s, 0, n, 2*(bits.Len(uint(n))-1), less)
	finalInsertionSort(s, 0, n, less)
}

// sortThreshold is libstdc++'s _S_threshold.
const sortThreshold = 16

func introsortLoop(s []int32, first, last, depth int, less func(a, b int32) bool) {
	for last-first > sortThreshold {
		if depth == 0 {
			heapSort(s[first:last], less) // std::__partial_sort(first, last, last)
			return
		}
		depth--
		cut := partitionPivot(s, first, last, less)
		introsortLoop(s, cut, last, depth, less)
		last = cut
	}
}

// partitionPivot is __unguarded_partition_pivot.
func partitionPivot(s []int32, first, last int, less func(a, b int32) bool) int {
	mid := first + (last-first)/2
	moveMedianToFirst(s, first, first+1, mid, last-1, less)
	// __unguarded_partition(first+1, last, first)
	lo, hi := first+1, last
	for {
		for less(s[lo], s[first]) {
			lo++
		}
		hi--
		for less(s[first], s[hi]) {
			hi--
		}
		if lo >= hi {
			return lo
		}
		s[lo], s[hi] = s[hi], s[lo]
		lo++
	}
}

// moveMedianToFirst is __move_median_to_first.
func moveMedianToFirst(s []int32, r, a, b, c int, less func(a, b int32) bool) {
	swap := func(i int) { s[r], s[i] = s[i], s[r] }
	switch {
	case less(s[a], s[b]):
		switch {
		case less(s[b], s[c]):
			swap(b)
		case less(s[a], s[c]):
			swap(c)
		default:
			swap(a)
		}
	case less(s[a], s[c]):
		swap(a)
	case less(s[b], s[c]):
		swap(c)
	default:
		swap(b)
	}
}

// finalInsertionSort is __final_insertion_sort.
func finalInsertionSort(s []int32, first, last int, less func(a, b int32) bool) {
	if last-first > sortThreshold {
		insertionSort(s, first, first+sortThreshold, less)
		for i := first + sortThreshold; i < last; i++ {
			unguardedLinearInsert(s, i, less)
		}
		return
	}
	insertionSort(s, first, last, less)
}

// insertionSort is __insertion_sort.
func insertionSort(s []int32, first, last int, less func(a, b int32) bool) {
	for i := first + 1; i < last; i++ {
		if less(s[i], s[first]) {
			v := s[i]
			copy(s[first+1:i+1], s[first:i])
			s[first] = v
		} else {
			unguardedLinearInsert(s, i, less)
		}
	}
}

// unguardedLinearInsert is __unguarded_linear_insert.
func unguardedLinearInsert(s []int32, last int, less func(a, b int32) bool) {
	v := s[last]
	next := last - 1
	for less(v, s[next]) {
		s[last] = s[next]
		last = next
		next--
	}
	s[last] = v
}

// heapSort is std::__make_heap then std::__sort_heap.
func heapSort(s []int32, less func(a, b int32) bool) {
	n := len(s)
	if n < 2 {
		return
	}
	for parent := (n - 2) / 2; ; parent-- {
		adjustHeap(s, parent, n, s[parent], less)
		if parent == 0 {
			break
		}
	}
	for last := n - 1; last > 0; last-- {
		// __pop_heap(first, last, last)
		v := s[last]
		s[last] = s[0]
		adjustHeap(s, 0, last, v, less)
	}
}

// adjustHeap is std::__adjust_heap with __push_heap.
func adjustHeap(s []int32, hole, n int, v int32, less func(a, b int32) bool) {
	top := hole
	child := hole
	for child < (n-1)/2 {
		child = 2 * (child + 1)
		if less(s[child], s[child-1]) {
			child--
		}
		s[hole] = s[child]
		hole = child
	}
	if n&1 == 0 && child == (n-2)/2 {
		child = 2 * (child + 1)
		s[hole] = s[child-1]
		hole = child - 1
	}
	parent := (hole - 1) / 2
	for hole > top && less(s[parent], v) {
		s[hole] = s[parent]
		hole = parent
		parent = (hole - 1) / 2
	}
	s[hole] = v
}
