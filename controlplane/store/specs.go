package store

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/protobuf/proto"
)

// specTable lets the cached tasks that run one version of a service share
// one copy of its spec. A spec is most of a task, and every task carries
// one: without sharing, a hundred thousand tasks hold a hundred thousand
// equal copies. Cached objects are never modified, so sharing is safe.
type specTable struct {
	m map[specKey]*sharedSpec
}

type specKey struct {
	service string
	version uint64
}

type sharedSpec struct {
	spec *berthv1.ServiceSpec
	refs int
}

// share points t at the table's copy of its spec when they are equal (a
// scale changes the replicas of later tasks' copies without a new version,
// so equal keys do not always mean equal specs), and adds t's own copy when
// none is kept yet.
func (st *specTable) share(t *berthv1.Task) {
	if t.Spec == nil {
		return
	}
	if st.m == nil {
		st.m = map[specKey]*sharedSpec{}
	}
	k := specKey{t.ServiceId, t.SpecVersion}
	s, ok := st.m[k]
	switch {
	case !ok:
		st.m[k] = &sharedSpec{spec: t.Spec, refs: 1}
	case s.spec == t.Spec:
		s.refs++
	case proto.Equal(s.spec, t.Spec):
		t.Spec = s.spec
		s.refs++
	}
}

// release forgets t's reference, dropping the copy nobody uses any more.
func (st *specTable) release(t *berthv1.Task) {
	k := specKey{t.ServiceId, t.SpecVersion}
	if s, ok := st.m[k]; ok && s.spec == t.Spec {
		if s.refs--; s.refs == 0 {
			delete(st.m, k)
		}
	}
}
