package tokenizer

import "math/bits"

// Ports of the libstdc++ (GCC 12) algorithms llama.cpp's tokenizer relies
// on, so that their order is reproduced even where the C++ standard leaves it
// unspecified: std::sort (introsort, not stable) orders the special-token
// cache, and std::priority_queue (a binary heap) orders the merge queues.
// less(a, b) is the C++ comparator comp(a, b) on indices into the slice.

// stdPushHeap is std::push_heap on s: the last element joins the heap.
func stdPushHeap[T any](s []T, less func(a, b T) bool) {
	n := len(s)
	if n < 2 {
		return
	}
	v := s[n-1]
	stdPushHeapHole(s, n-1, 0, v, less)
}

// stdPushHeapHole is std::__push_heap.
func stdPushHeapHole[T any](s []T, hole, top int, v T, less func(a, b T) bool) {
	parent := (hole - 1) / 2
	for hole > top && less(s[parent], v) {
		s[hole] = s[parent]
		hole = parent
		parent = (hole - 1) / 2
	}
	s[hole] = v
}

// stdAdjustHeap is std::__adjust_heap.
func stdAdjustHeap[T any](s []T, hole, n int, v T, less func(a, b T) bool) {
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
	stdPushHeapHole(s, hole, top, v, less)
}

// stdPopHeap is std::pop_heap on s: the top moves to the last place and the
// rest stays a heap.
func stdPopHeap[T any](s []T, less func(a, b T) bool) {
	n := len(s)
	if n < 2 {
		return
	}
	v := s[n-1]
	s[n-1] = s[0]
	stdAdjustHeap(s[:n-1], 0, n-1, v, less)
}

// stdMakeHeap is std::make_heap.
func stdMakeHeap[T any](s []T, less func(a, b T) bool) {
	n := len(s)
	if n < 2 {
		return
	}
	for parent := (n - 2) / 2; ; parent-- {
		stdAdjustHeap(s, parent, n, s[parent], less)
		if parent == 0 {
			return
		}
	}
}

// stdSortHeap is std::sort_heap.
func stdSortHeap[T any](s []T, less func(a, b T) bool) {
	for n := len(s); n > 1; n-- {
		stdPopHeap(s[:n], less)
	}
}

// stdSort is std::sort: introsort with median-of-three pivots, heapsort when
// too deep, and a final insertion sort over runs of 16.
func stdSort[T any](s []T, less func(a, b T) bool) {
	if len(s) < 2 {
		return
	}
	stdIntrosort(s, 2*(bits.Len(uint(len(s)))-1), less)
	stdFinalInsertionSort(s, less)
}

const stdSortThreshold = 16

func stdIntrosort[T any](s []T, depth int, less func(a, b T) bool) {
	for len(s) > stdSortThreshold {
		if depth == 0 {
			stdMakeHeap(s, less) // std::__partial_sort(first, last, last)
			stdSortHeap(s, less)
			return
		}
		depth--
		cut := stdPartitionPivot(s, less)
		stdIntrosort(s[cut:], depth, less)
		s = s[:cut]
	}
}

// stdPartitionPivot is std::__unguarded_partition_pivot.
func stdPartitionPivot[T any](s []T, less func(a, b T) bool) int {
	mid := len(s) / 2
	// std::__move_median_to_first(first, first+1, mid, last-1)
	a, b, c := 1, mid, len(s)-1
	switch {
	case less(s[a], s[b]):
		switch {
		case less(s[b], s[c]):
			s[0], s[b] = s[b], s[0]
		case less(s[a], s[c]):
			s[0], s[c] = s[c], s[0]
		default:
			s[0], s[a] = s[a], s[0]
		}
	case less(s[a], s[c]):
		s[0], s[a] = s[a], s[0]
	case less(s[b], s[c]):
		s[0], s[c] = s[c], s[0]
	default:
		s[0], s[b] = s[b], s[0]
	}
	// std::__unguarded_partition(first+1, last, first)
	first, last := 1, len(s)
	for {
		for less(s[first], s[0]) {
			first++
		}
		last--
		for less(s[0], s[last]) {
			last--
		}
		if first >= last {
			return first
		}
		s[first], s[last] = s[last], s[first]
		first++
	}
}

func stdFinalInsertionSort[T any](s []T, less func(a, b T) bool) {
	if len(s) > stdSortThreshold {
		stdInsertionSort(s[:stdSortThreshold], less)
		for i := stdSortThreshold; i < len(s); i++ {
			stdUnguardedLinearInsert(s, i, less)
		}
		return
	}
	stdInsertionSort(s, less)
}

func stdInsertionSort[T any](s []T, less func(a, b T) bool) {
	for i := 1; i < len(s); i++ {
		if less(s[i], s[0]) {
			v := s[i]
			copy(s[1:i+1], s[:i])
			s[0] = v
		} else {
			stdUnguardedLinearInsert(s, i, less)
		}
	}
}

func stdUnguardedLinearInsert[T any](s []T, last int, less func(a, b T) bool) {
	v := s[last]
	next := last - 1
	for less(v, s[next]) {
		s[last] = s[next]
		last = next
		next--
	}
	s[last] = v
}
