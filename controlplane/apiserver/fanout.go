package apiserver

import (
	"context"
	"sync"
	"time"

	berthv1 "github.com/berthproject/berth/api/berth/v1"
)

// eachNode calls call for every node of nodes at once, with the node's
// client and a context bounded by timeout, so that one node that does not
// answer cannot hold the others back. It returns when every call has
// returned: errs[i] is node i's error, also when it has no client.
func (s *Server) eachNode(ctx context.Context, nodes []*berthv1.Node, timeout time.Duration, call func(ctx context.Context, i int, cli berthv1.NodeServiceClient) error) (errs []error) {
	errs = make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli, err := s.cfg.Nodes.Client(n)
			if err != nil {
				errs[i] = err
				return
			}
			nctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			errs[i] = call(nctx, i, cli)
		}()
	}
	wg.Wait()
	return errs
}
