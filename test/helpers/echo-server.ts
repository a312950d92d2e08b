/**
 * A tiny gRPC backend on 127.0.0.1: /palisade.echo.v1.Echo/Echo answers with its own
 * name, so a test can count which backend served each call. Raw bytes, no proto needed.
 */
import { Server, ServerCredentials, type ServiceDefinition, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';

export const ECHO_PATH = '/palisade.echo.v1.Echo/Echo';
const identity = (b: Buffer) => b;

export const ECHO_SERVICE: ServiceDefinition = {
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

export interface EchoServer {
  name: string;
  port: number;
  calls: number;
  close(): Promise<void>;
}

export async function startEchoServer(name: string): Promise<EchoServer> {
  const server = new Server();
  const echo: EchoServer = { name, port: 0, calls: 0, close: () => new Promise((r) => server.tryShutdown(() => r())) };
  server.addService(ECHO_SERVICE, {
    Echo: (_call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
      echo.calls++;
      cb(null, Buffer.from(name));
    },
  });
  echo.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  return echo;
}
