// node --test tests/js: display names without a DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayName, dmLabel, learnPeople, personTitle, setMe } from '../../static/names.js';

test('a username shows as itself until a display name is known', () => {
  assert.equal(displayName('nobody'), 'nobody');
  assert.equal(personTitle('nobody'), '@nobody');
});

test('learnPeople reports what changed, and names follow', () => {
  assert.deepEqual(learnPeople([{ username: 'alice', display_name: 'alice' }]), []);
  assert.deepEqual(learnPeople([{ username: 'alice', display_name: 'Alice Liddell' }, { username: 'bob' }]), ['alice']);
  assert.equal(displayName('alice'), 'Alice Liddell');
  assert.equal(displayName('ALICE'), 'Alice Liddell'); // usernames are case-insensitive
  assert.equal(personTitle('alice'), 'Alice Liddell (@alice)');
  assert.deepEqual(learnPeople([{ username: 'alice', display_name: 'Alice Liddell' }]), []);
  assert.deepEqual(learnPeople([null, { display_name: 'x' }, { username: 'carol', display_name: '' }]), []);
  assert.equal(displayName('carol'), 'carol');
});

test('a DM is named after the others by their display names', () => {
  setMe('bob');
  learnPeople([{ username: 'alice', display_name: 'Alice Liddell' }, { username: 'dan', display_name: 'Дан' }]);
  assert.equal(dmLabel(['alice', 'bob']), 'Alice Liddell');
  assert.equal(dmLabel(['alice', 'Bob', 'dan']), 'Alice Liddell, Дан');
  assert.equal(dmLabel(['bob'], 'bob'), 'bob');
  assert.equal(dmLabel(null, 'server name'), 'server name');
});
