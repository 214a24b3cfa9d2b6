// Package e2e holds Rampart's end-to-end tests: real binaries in network
// namespaces the tests create, real packets between a defender and an
// attacker. It has no code of its own outside tests.
package e2e
