// SHA-512 crypt against the test vectors of the public specification, and openssl.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomSalt, sha512Crypt } from '../../src/guest/sysprep/crypt.js';

describe('sha512Crypt', () => {
  it('matches the specification test vectors', () => {
    assert.equal(sha512Crypt('Hello world!', 'saltstring'),
      '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1');
    assert.equal(sha512Crypt('Hello world!', 'saltstringsaltstring', 10000),
      '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.');
    assert.equal(sha512Crypt('This is just a test', 'toolongsaltstring', 5000),
      '$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0');
    // rounds below 1000 are clamped to 1000 (value checked with libxcrypt's crypt(3)).
    assert.equal(sha512Crypt('we have a short salt string but not a short password', 'roundstoolow', 10),
      '$6$rounds=1000$roundstoolow$yjTuW7RnC.d35QcVTFIb6uvh/7IQ1.GFtFN3i/.jwmeWEhzjf4uD/OPCb4jRl6atJGYhLst8IyR6YAtTrriMU1');
  });

  it('agrees with openssl passwd -6 on long and non-ASCII passwords', (t) => {
    const probe = spawnSync('openssl', ['passwd', '-6', '-salt', 'x', 'y'], { encoding: 'utf8' });
    if (probe.status !== 0) { t.skip('openssl not available'); return; }
    for (const pw of ['a'.repeat(200), 'pässwörd ✓', 'x', 'sixty-four-bytes-long-password-0123456789012345678901234567890123']) {
      const salt = randomSalt();
      const o = spawnSync('openssl', ['passwd', '-6', '-salt', salt, pw], { encoding: 'utf8' });
      assert.equal(sha512Crypt(pw, salt), o.stdout.trim(), pw);
    }
  });
});
