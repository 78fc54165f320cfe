package pipeline

import (
	"errors"
	"fmt"
	"regexp"
	"sync"

	"github.com/layerdiff/layerdiff/pkg/compare"
	"github.com/layerdiff/layerdiff/pkg/model/forward"
	"github.com/layerdiff/layerdiff/pkg/reference"
	"github.com/layerdiff/layerdiff/pkg/tensor"
)

// streamSide is the compare.Side of a forward pass that is running while
// Compare measures: its nodes are known before the run (forward.Model.Nodes),
// Tensor waits until the run has recorded the node, and Release drops a
// measured tensor (or one no row reads, before the run produces it) so that
// the run's memory is recycled instead of every activation being held
// until the end. A released tensor asked for again (the blamer's hints) is
// recomputed by regen once the run has ended.
//
// It is also the run's forward.Recorder.
type streamSide struct {
	nodes   []compare.Node
	keys    nodeKeys // used by Want, in the run's goroutine
	pending string   // the key of the node Want accepted last

	mu       sync.Mutex
	cond     sync.Cond
	have     map[string]*tensor.Tensor
	released map[string]bool // measured and dropped, or never to be read
	done     bool            // the run has ended
	err      error           // why it ended early, or errStopped
	stop     bool            // Record returns errStopped from now on

	// regen recomputes the tensor of a released key; nil means a released
	// tensor cannot be asked for again.
	regen func(key string) (*tensor.Tensor, error)
}

// errStopped ends a run whose results are no longer wanted.
var errStopped = errors.New("forward pass stopped: its results are no longer needed")

// newStreamSide lists the nodes of a run that the recorder will keep: those
// whose name filter matches (all when filter is nil), keyed as KeyMaker
// keys them.
func newStreamSide(nodes []forward.Node, filter *regexp.Regexp) *streamSide {
	s := &streamSide{keys: nodeKeys{filter: filter}, have: map[string]*tensor.Tensor{}, released: map[string]bool{}}
	s.cond.L = &s.mu
	list := nodeKeys{filter: filter}
	for _, n := range nodes {
		if key, ok := list.next(n.Name); ok {
			s.nodes = append(s.nodes, compare.Node{Key: key, Name: n.Name, Op: n.Op, Ne: tensor.Trim(n.Ne[:])})
		}
	}
	return s
}

// nodeKeys keys the nodes of a run that a name filter keeps (all when it
// is nil) as reference.KeyMaker does; every node of the run, in order,
// must pass through next.
type nodeKeys struct {
	filter *regexp.Regexp
	keys   reference.KeyMaker
}

// next returns the key of the next node, named name, or false when the
// filter drops it.
func (k *nodeKeys) next(name string) (string, bool) {
	if k.filter != nil && !k.filter.MatchString(name) {
		return "", false
	}
	return k.keys.Next(name), true
}

// Want implements forward.Recorder: the nodes the filter keeps, but not
// those released before the run produced them (no one will read them, so
// a view is not even gathered).
func (s *streamSide) Want(n *forward.Node) bool {
	key, ok := s.keys.next(n.Name)
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released[key] {
		return false
	}
	s.pending = key
	return true
}

// Record implements forward.Recorder: it hands the tensor to whoever waits
// for it.
func (s *streamSide) Record(n *forward.Node, t *tensor.Tensor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop {
		return errStopped
	}
	t.Key = s.pending
	if s.released[t.Key] { // released since Want
		return nil
	}
	s.have[t.Key] = t
	s.cond.Broadcast()
	return nil
}

// finish marks the end of the run (err nil when it completed).
func (s *streamSide) finish(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done, s.err = true, err
	s.cond.Broadcast()
}

// halt makes the run stop at its next recorded node.
func (s *streamSide) halt() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop = true
}

// Nodes implements compare.Side.
func (s *streamSide) Nodes() []compare.Node { return s.nodes }

// Tensor implements compare.Side: it waits until the run has recorded the
// node, or has ended without it.
func (s *streamSide) Tensor(key string) (*tensor.Tensor, error) {
	s.mu.Lock()
	for {
		if t, ok := s.have[key]; ok {
			s.mu.Unlock()
			return t, nil
		}
		if s.done && s.released[key] {
			// Recomputed by another pass, never alongside the running one.
			s.mu.Unlock()
			if s.regen == nil {
				return nil, fmt.Errorf("forward tensor %s was released", key)
			}
			return s.regen(key)
		}
		if s.done {
			err := s.err
			s.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("forward pass ended before %s: %w", key, err)
			}
			return nil, fmt.Errorf("the forward pass did not produce %s", key)
		}
		s.cond.Wait()
	}
}

// Release implements compare.Releaser: the tensor is dropped, or, when the
// run has not produced it yet, not kept.
func (s *streamSide) Release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.have, key)
	s.released[key] = true
}

// offerKeys keys the nodes of a run, from inside an Injector, as the run's
// recorder keys them: the forward pass offers Inject no views and no f16
// nodes, so the recorder's Want counts those (offer, then want, for the
// same *Node when it is offered).
type offerKeys struct {
	keys    nodeKeys
	offered *forward.Node // the node offered last, until Want sees it
}

// offer returns the key of n, offered to Inject (false: the filter drops it).
func (k *offerKeys) offer(n *forward.Node) (string, bool) {
	k.offered = n
	return k.keys.next(n.Name)
}

// want counts n's key unless Inject was offered it.
func (k *offerKeys) want(n *forward.Node) {
	if k.offered != n {
		k.keys.next(n.Name)
	}
	k.offered = nil
}

// recomputeOne runs the forward pass again and returns the tensor of one
// node, keyed as a streamSide with the same filter keys it.
func recomputeOne(m *forward.Model, tokens []int32, opts forward.Options, filter *regexp.Regexp, key string) (*tensor.Tensor, error) {
	r := &oneRecorder{keys: nodeKeys{filter: filter}, key: key}
	if _, err := m.Run(tokens, opts, r); err != nil {
		return nil, fmt.Errorf("recomputing %s: %w", key, err)
	}
	if r.got == nil {
		return nil, fmt.Errorf("recomputing %s: the forward pass has no such node", key)
	}
	return r.got, nil
}

// oneRecorder keeps the node with one key.
type oneRecorder struct {
	keys nodeKeys
	key  string
	got  *tensor.Tensor
}

func (r *oneRecorder) Want(n *forward.Node) bool {
	key, ok := r.keys.next(n.Name)
	return ok && key == r.key
}

func (r *oneRecorder) Record(n *forward.Node, t *tensor.Tensor) error {
	t.Key = r.key
	r.got = t
	return nil
}
