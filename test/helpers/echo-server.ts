/** The gRPC echo backend the demo uses (answers with its name), for the interop tests. */
export { ECHO_PATH, startEchoBackend as startEchoServer, type EchoBackend as EchoServer } from '../../cli/demo/echo-backend.ts';
