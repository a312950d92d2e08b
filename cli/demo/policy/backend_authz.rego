# The demo's authorization policy for the backend (OPA-Envoy input): the frontend's
# workload, as its mTLS identity proves, may GET /hello; anything else is denied with a reason.
# Built into backend-authz.tar.gz by scripts/build-demo-policy.sh; the demo signs it at start.
package envoy.authz

default allow := {
	"allowed": false,
	"http_status": 403,
	"body": "denied by policy default/backend-authz: only spiffe://palisade.local/ns/default/sa/frontend may GET /hello",
}

allow := true if {
	input.attributes.source.principal == "spiffe://palisade.local/ns/default/sa/frontend"
	input.attributes.request.http.method == "GET"
	input.parsed_path == ["hello"]
}
