# server.mk - rules of the HTTP server module (src/http, src/api, serve).
.PHONY: bench-server
bench-server: all $(ORACLE)
	sh bench/server/run.sh
