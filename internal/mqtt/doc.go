// Package mqtt is DPS's device protocol over MQTT 3.1.1
// (shared/reference/dps-protocol.md §3), on a TLS listener of its own and
// over WebSockets at /$iothub/websocket on the HTTPS listener, so that
// devices on the Azure MQTT transports and on bare MQTT stacks provision
// unchanged.
//
// An embedded mochi-mqtt broker parses the packets and keeps the sessions;
// one hook seals it to DPS's topics. CONNECT carries the registration ID
// (client ID and username) and the credential (a SAS token as the
// password, or the TLS client certificate), which provisioning checks
// before CONNACK. A register or operation-status publish becomes a
// provisioning.Request, and its answer (DPS's JSON body, the status in
// the topic) is written to the requesting connection only. Nothing a
// device publishes reaches any other client; there are no retained
// messages, wills, persistent sessions or other subscriptions.
//
// The package only translates wire formats, as the DPS HTTPS device API
// does: it holds no store, attests and allocates nothing itself, and turns
// errors into answers through apierr.Classify (and DPS's error body
// through apierr's DPSBody). It must not import a store, internal/server
// or the DPS HTTPS packages (it keeps its own copy of DPS's few success
// shapes, which are DPS's fixed wire format).
package mqtt
