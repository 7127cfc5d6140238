package ca

import "github.com/berthproject/berth/api/identity"

// PullGrant signs the statement that node nodeID may fetch manifest digest
// dgst from its peers (identity.SignPullGrant): the dispatcher hands one
// to a node for each pinned image of its tasks, and peers serve nothing
// without one.
func (a *Authority) PullGrant(nodeID, dgst string) ([]byte, error) {
	return identity.SignPullGrant(a.state().key, nodeID, dgst, a.clock())
}
