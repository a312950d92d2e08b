/**
 * The demo's workload: a tiny gRPC server on loopback whose one method,
 * /palisade.echo.v1.Echo/Echo, answers with the server's name, so the demo can count which
 * backend served each call. Raw bytes in and out: no .proto needed on either side.
 */
import {
  Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall, type ServiceDefinition,
} from '@grpc/grpc-js';

export const ECHO_PATH = '/palisade.echo.v1.Echo/Echo';

const identity = (b: Buffer): Buffer => b;

const ECHO_SERVICE: ServiceDefinition = {
  Echo: {
    path: ECHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

export interface EchoBackend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** Calls answered so far. */
  readonly calls: number;
  /** Stops accepting and waits for calls in flight (at most `graceMs`, default 1000). */
  close(graceMs?: number): Promise<void>;
}

/** Starts an echo backend on `host:0` (a free port) and resolves once it listens. */
export async function startEchoBackend(name: string, host = '127.0.0.1'): Promise<EchoBackend> {
  const server = new Server();
  let calls = 0;
  const reply = Buffer.from(name);
  server.addService(ECHO_SERVICE, {
    Echo: (_call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => {
      calls++;
      done(null, reply);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:0`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return {
    name, host, port,
    get calls() {
      return calls;
    },
    close: (graceMs = 1000) => new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    }),
  };
}
