/**
 * PostgreSQL md5 password authentication (AuthenticationMD5Password). Pure.
 */
import crypto from 'node:crypto';

function md5Hex(data: Buffer): string {
  return crypto.createHash('md5').update(data).digest('hex');
}

/**
 * The PasswordMessage payload for md5 auth:
 *   "md5" + md5hex(md5hex(password + user) + salt)
 * as 35 ASCII bytes. It does NOT include the terminating NUL; the wire
 * encoder adds it (PasswordMessage carries a C string).
 * `user` is the role name from the startup packet; `salt` the 4 bytes from
 * AuthenticationMD5Password.
 */
export function md5PasswordResponse(user: string, password: string, salt: Buffer): Buffer {
  if (salt.length !== 4) throw new RangeError(`md5 salt must be 4 bytes, got ${salt.length}`);
  const inner = md5Hex(Buffer.from(password + user, 'utf8'));
  const outer = md5Hex(Buffer.concat([Buffer.from(inner, 'ascii'), salt]));
  return Buffer.from(`md5${outer}`, 'ascii');
}
