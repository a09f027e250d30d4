// Display names: the name people see for a username. Filled from GET /api/v1/users
// and `hello`; a `user_updated` event changes one, and every name on screen follows:
// elements made by person() carry data-person and are found again by refreshNames().
// The username stays in reach: it is the element's title ("@alice"), shown on hover.

const shown = new Map(); // username (case-folded) -> display name
let me = '';

const key = (username) => String(username ?? '').toLowerCase();

/** Who the viewer is: a DM is named after the others. */
export function setMe(username) { me = username; }

/** The name people see for `username` (the username itself until one is known). */
export function displayName(username) {
  return shown.get(key(username)) || username;
}

/** Learn names from [{username, display_name}]; returns the usernames that changed. */
export function learnPeople(people) {
  const changed = [];
  for (const p of people ?? []) {
    if (!p || typeof p.username !== 'string') continue;
    const name = typeof p.display_name === 'string' && p.display_name ? p.display_name : p.username;
    if (displayName(p.username) !== name) changed.push(p.username);
    shown.set(key(p.username), name);
  }
  return changed;
}

/** A DM's name: the other members' display names (or the server's name for it). */
export function dmLabel(members, fallback = '') {
  const others = (members ?? []).filter((u) => key(u) !== key(me));
  return others.length ? others.map(displayName).join(', ') : fallback;
}

/** "Alice Liddell" beside the username on hover: the title of a person's name. */
export function personTitle(username) {
  const name = displayName(username);
  return name === username ? `@${username}` : `${name} (@${username})`;
}

/** A span showing a person's display name; refreshNames() keeps it current. */
export function person(username, cls = '') {
  const el = document.createElement('span');
  if (cls) el.className = cls;
  el.dataset.person = username;
  el.textContent = displayName(username);
  el.title = personTitle(username);
  return el;
}

/** Bring every person() element for these usernames (all when none) up to date. */
export function refreshNames(usernames = null, root = document) {
  const only = usernames ? new Set(usernames.map(key)) : null;
  for (const el of root.querySelectorAll('[data-person]')) {
    const username = el.dataset.person;
    if (only && !only.has(key(username))) continue;
    const name = displayName(username);
    if (el.textContent !== name) el.textContent = name;
    el.title = personTitle(username);
  }
}
