package berthv1

// LeaderMetadataKey is the gRPC trailer in which a control plane server
// that does not lead names the leader's address to an agent that opened a
// session with it: only the leader takes agent sessions.
const LeaderMetadataKey = "berth-leader"
