package apiserver

import (
	berthv1 "github.com/berthproject/berth/api/berth/v1"
	"google.golang.org/grpc/metadata"
)

// WatchEvents sends the events that match the request's filters, as
// ListEvents returns them, then each matching event as it is recorded,
// until the client goes away.
func (s *Server) WatchEvents(req *berthv1.ListEventsRequest, stream berthv1.ClusterService_WatchEventsServer) error {
	since, limit, err := eventRange(req)
	if err != nil {
		return err
	}
	// Headers at once: an HTTP client sees the stream open even when no
	// event matches yet.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	err = s.cfg.Store.FollowEvents(stream.Context(), since, limit, eventFilter(stream.Context(), req), stream.Send)
	if err != nil && stream.Context().Err() == nil {
		return storeError(err)
	}
	return nil
}
