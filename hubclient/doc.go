// Package hubclient is the hub side of Zerotouch's assignment stream: the
// library a hub cluster embeds to learn which devices Zerotouch assigns to
// its shards, so that it can admit them when they connect.
//
// Zerotouch registers each device onto a shard, and each shard belongs to a
// hub cluster. A node of that cluster connects to Zerotouch's
// HubAssignmentService over mutual TLS, with the client certificate pinned
// on its cluster, and keeps a [Replica]: a local copy of its shards' device
// identities and, per shard, the cursor of the last event applied, kept in
// a JSON file. A [Client] keeps the replica in step with Zerotouch:
//
//   - a shard the replica has no cursor for (a new replica, a shard newly
//     given to the cluster, or a cursor older than the events the server
//     retains) is reset from a paged snapshot (ListShardIdentities);
//   - every shard is then watched from its cursor (WatchAssignments), and
//     each event is applied by the identity's version: delivery is at least
//     once and ordered per shard only, so duplicates and overtaken events
//     change nothing;
//   - the replica is saved atomically (a temporary file, synced, renamed
//     over the old one), and only what was saved is acknowledged
//     (AckAssignments): an acknowledgement never runs ahead of the disk;
//   - transient errors (a server restarting, network loss) are retried with
//     backoff, and a restarted node resumes from its file: a node killed at
//     any point misses nothing. Errors retrying cannot cure (the
//     certificate is refused, a named shard is not the cluster's) end
//     [Client.Run] with an error wrapping [ErrFatal].
//
// Named no shards, a Client follows all of its cluster's shards
// (ListClusterShards, checked again every RediscoverEvery): a shard given
// to the cluster is snapshotted and followed, one taken away is dropped
// from the replica, so a replica never keeps another cluster's devices.
//
// # Using it
//
// Dial Zerotouch's gRPC listener with grpc.NewClient and TLS credentials
// that carry the node's certificate (keepalive pings find a dead
// connection under a quiet stream), open the replica with [OpenReplica],
// and run a [Client] until shutdown (when its context ends, Run saves the
// replica and returns nil). To admit a device, look it up with
// [Replica.Get], check that it is Enabled, and compare the credential it
// presents with the [Identity]'s (certificate or CA thumbprint, TPM
// endorsement key hash, symmetric key hash). A device that connects before
// its event reached the replica can be checked with the service's
// LookupIdentity. The package example is a complete hub node, and
// `zerotouch hub`, the reference agent, is this package and a flag parser.
//
// A Replica rewrites its whole file on each save: fine for the tens of
// thousands of devices a small hub or a test holds, not for millions. A
// hub that keeps its identities in its own database speaks the same
// protocol with the generated client of proto/zerotouch/v1; ADR 15
// (docs/adr/0015-assignment-stream.md) describes it.
//
// This package imports the public API (proto/zerotouch/v1) and gRPC only,
// never an internal package of Zerotouch, so a hub that embeds it pulls in
// no server code; internal/archtest enforces it.
package hubclient
