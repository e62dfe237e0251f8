// Package pki owns the certificates of the mutual TLS between agents and the
// control plane: creating a cluster CA, issuing agent and server certificates
// from it, reading a cluster's identity from a verified agent certificate,
// and the tls.Config values of both ends, which pick up rotated files
// without a restart.
//
// Files (all PEM; keys are ECDSA P-256 in PKCS#8 "PRIVATE KEY" blocks, mode
// 0600; certificates mode 0644; directories are created 0700):
//
//	<ca-dir>/ca.crt, ca.key      the cluster CA (CACertFile, CAKeyFile)
//	<out>/agent.crt, agent.key   one agent (AgentCertFile, AgentKeyFile)
//	<out>/server.crt, server.key the control plane (ServerCertFile, ServerKeyFile)
//
// Invariants:
//   - An agent certificate names its cluster twice, as the subject
//     CommonName and as the URI SAN cutover://cluster/<name>, and is good
//     for client authentication only; a server certificate is good for
//     server authentication only, so neither can stand in for the other.
//   - Every file is written to a temporary file in the same directory and
//     renamed into place, so a reader never sees half a file. A key pair is
//     two files, so a reader may briefly see a new certificate with the old
//     key; KeyPair then keeps serving the previous pair and tries again.
//   - A CA is never overwritten: InitCA refuses when either file exists.
//   - Peers are verified against the CA file as it is at each handshake,
//     so a rotated CA takes effect for new connections without a restart.
package pki
