/**
 * nginx as bench/tls's peer: 1 worker, TLS 1.3 only, the same certificate chain and key as the
 * Palisade target, a shared session cache and session tickets (so resumption works as with
 * Node's default tickets), `return 200 "ok"`, no access log. With a bundle, mutual TLS:
 * `ssl_verify_client on` against it (depth 2: leaf, intermediate, root).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export interface NginxTlsFiles {
  readonly key: string;
  readonly chain: string;
  /** Root bundle for client certificates (mutual TLS), or null. */
  readonly bundle: string | null;
}

export function nginxTlsConf(prefix: string, port: number, files: NginxTlsFiles): string {
  const tmp = join(prefix, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const mutual = files.bundle === null ? '' : `
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_client_certificate ${files.bundle};`;
  return `# bench/tls: nginx terminating TLS
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  server {
    listen 127.0.0.1:${port} ssl backlog=4096;
    ssl_certificate ${files.chain};
    ssl_certificate_key ${files.key};
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    ssl_session_tickets on;${mutual}
    location / {
      default_type text/plain;
      return 200 "ok";
    }
  }
}
`;
}
