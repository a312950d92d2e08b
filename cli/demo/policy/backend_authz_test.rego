package envoy.authz_test

import data.envoy.authz

frontend := "spiffe://palisade.local/ns/default/sa/frontend"

test_frontend_may_get_hello if {
	authz.allow == true with input as {"attributes": {"source": {"principal": frontend}, "request": {"http": {"method": "GET"}}}, "parsed_path": ["hello"]}
}

test_frontend_may_not_delete if {
	authz.allow.allowed == false with input as {"attributes": {"source": {"principal": frontend}, "request": {"http": {"method": "DELETE"}}}, "parsed_path": ["hello"]}
}

test_others_may_not_get if {
	authz.allow.http_status == 403 with input as {"attributes": {"source": {"principal": "spiffe://palisade.local/ns/default/sa/other"}, "request": {"http": {"method": "GET"}}}, "parsed_path": ["hello"]}
}
