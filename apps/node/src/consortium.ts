/**
 * A network of institutions made without any one of them holding another's secrets (`init` makes
 * every key in one place: right for a devnet, not for banks):
 *
 * - `member`: an institution turns its own key files (`keys new --out`) into a member card — the
 *   public parts a genesis needs (account address and public key, the node's public key and the
 *   peer id others bootstrap to, the rights asked for) — and sends the card, never a secret.
 * - `genesis new`: whoever assembles the network makes the genesis from the cards and prints its hash,
 *   which every institution checks against what its own node reports before it trusts the file.
 *
 * Institutions that come later join a running network through governance (`addMember`,
 * `addValidator`), with the same card's public parts.
 */
import { resolve } from 'node:path'
import {
  type Address,
  accountAddress,
  addressToBytes,
  compareBytes,
  fromHex,
  genesisHash,
  genesisToJson,
  isAddress,
  keyPairFromSecret,
  MEMBER_ID,
  MEMBER_NAME_MAX_BYTES,
  parseGenesis,
  RIGHT_NAMES,
  to0x,
  toHex,
} from '@loopchain/core'
import { nativeCrypto } from '@loopchain/node/client'
import { fail, flag, writeNewFile } from './cli.js'
import { readJsonFile, readKeyFile, secretKeyIn } from './config.js'

/** What a member card's `format` says: a card of another form is refused, not guessed at. */
export const MEMBER_CARD_FORMAT = 'loopchain-member/1'

/** Without `--rights`, what a validating institution needs (the names: core's `RIGHT_NAMES`). */
const DEFAULT_RIGHTS = ['validator', 'member-node']

/** A member's name as the genesis holds it (its id: core's `MEMBER_ID`). */
const nameFits = (name: string) =>
  name.trim() !== '' &&
  new TextEncoder().encode(name).length <= MEMBER_NAME_MAX_BYTES &&
  !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(name)
/** What a card holds: anything else (a secret under another name, say) is refused, not carried along. */
const CARD_FIELDS = ['format', 'id', 'name', 'address', 'publicKey', 'nodeKey', 'peerId', 'rights', 'power']

/** A member card: an institution's public parts, as `member` writes them and `genesis new` reads them. */
export interface MemberCard {
  readonly format: typeof MEMBER_CARD_FORMAT
  readonly id: string
  readonly name: string
  readonly address: Address
  /** The account's public key: what a validator signs with. */
  readonly publicKey: string
  /** The node's public key (its identity on the network), for a member that runs a node. */
  readonly nodeKey?: string
  /** The node's libp2p peer id, from `nodeKey`: what others put in their bootstrap lists. */
  readonly peerId?: string
  readonly rights: readonly string[]
  /** A validator's voting power (default 1). */
  readonly power?: number
}

/**
 * The public key in a key file: derived from its `secretKey` (a file other users may not read,
 * see {@link secretKeyIn}), or its `publicKey` when it holds only the public part (what
 * `keys new --out` prints). `address`, when there, must be the key's.
 */
function publicKeyOf(file: string, what: string): Uint8Array {
  let read: { json: unknown; mode: number }
  try {
    read = readKeyFile(file, what)
  } catch (e) {
    fail((e as Error).message)
  }
  const j = (typeof read.json === 'object' && read.json !== null ? read.json : {}) as {
    secretKey?: unknown
    publicKey?: unknown
    address?: unknown
  }
  if (j.secretKey !== undefined) {
    try {
      return keyPairFromSecret(fromHex(secretKeyIn(read, file, what)), nativeCrypto).publicKey
    } catch (e) {
      fail((e as Error).message)
    }
  }
  if (typeof j.publicKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(j.publicKey))
    fail(`${what} ${file} has neither secretKey nor publicKey (0x and 64 hex digits); make one with: loopchain keys new --out FILE`)
  const publicKey = fromHex(j.publicKey)
  if (j.address !== undefined && j.address !== accountAddress(publicKey)) fail(`${what} ${file}: its address is not its publicKey's`)
  return publicKey
}

/** `member`: the card of this institution, printed or written to a new file. */
export async function member(args: string[]): Promise<void> {
  const id = flag(args, 'id') ?? fail('member needs --id ID (lower-case letters, digits or dashes, e.g. bank-a)')
  if (!MEMBER_ID.test(id)) fail(`--id ${id} must be 1-64 lower-case letters, digits or dashes, starting with a letter or digit`)
  const name = flag(args, 'name') ?? fail('member needs --name NAME (the institution as people know it)')
  if (!nameFits(name)) fail(`--name must be 1 to ${MEMBER_NAME_MAX_BYTES} bytes of text`)
  const keyFile = flag(args, 'key') ?? fail("member needs --key FILE: the institution's account key (loopchain keys new --out FILE)")
  const publicKey = publicKeyOf(keyFile, 'the account key file')
  const nodeFile = flag(args, 'node-key')
  const nodeKey = nodeFile === undefined ? undefined : publicKeyOf(nodeFile, 'the node key file')
  const rights = (flag(args, 'rights') ?? DEFAULT_RIGHTS.join(',')).split(',').map((r) => r.trim())
  for (const r of rights) if (!RIGHT_NAMES.includes(r)) fail(`--rights: '${r}' is not a right; the rights are ${RIGHT_NAMES.join(', ')}`)
  if (new Set(rights).size !== rights.length) fail('--rights names a right twice')
  if (nodeKey !== undefined && toHex(nodeKey) === toHex(publicKey))
    fail('--node-key is the account key: a node needs a key of its own (loopchain keys new --out node.json)')
  if ((rights.includes('member-node') || rights.includes('validator')) && nodeKey === undefined)
    fail(
      rights.includes('validator')
        ? "the validator right is for a member that runs a node (a validator's votes travel between the members' nodes): give its key with --node-key FILE"
        : 'the member-node right is for a member that runs a node: give its key with --node-key FILE',
    )
  const powerText = flag(args, 'power')
  if (powerText !== undefined && !rights.includes('validator')) fail('--power is for a validator: --rights must name validator')
  if (powerText !== undefined && !/^[1-9]\d{0,8}$/.test(powerText)) fail(`--power must be a whole number from 1, not '${powerText}'`)
  const { peerIdFromNodePublicKey } = await import('@loopchain/node')
  const card: MemberCard = {
    format: MEMBER_CARD_FORMAT,
    id,
    name,
    address: accountAddress(publicKey),
    publicKey: to0x(publicKey),
    ...(nodeKey ? { nodeKey: to0x(nodeKey), peerId: peerIdFromNodePublicKey(nodeKey) } : {}),
    rights,
    ...(rights.includes('validator') ? { power: powerText === undefined ? 1 : Number(powerText) } : {}),
  }
  const text = `${JSON.stringify(card, null, 2)}\n`
  const out = flag(args, 'out')
  if (out === undefined) process.stdout.write(text)
  else {
    writeNewFile(out, text, 'member never overwrites a file')
    process.stdout.write(`${JSON.stringify({ file: resolve(out), id, address: card.address, peerId: card.peerId ?? null })}\n`)
  }
}

/** Reads and checks one member card (`peerIdOf`: a node key's peer id); `fail`s naming the file. */
function readCard(file: string, peerIdOf: (nodeKey: Uint8Array) => string): MemberCard {
  let c: Record<string, unknown>
  try {
    c = readJsonFile(file) as Record<string, unknown>
  } catch (e) {
    fail(`cannot read the member card ${file}: ${(e as Error).message}`)
  }
  const bad = (what: string): never => fail(`the member card ${file}: ${what}`)
  if (typeof c !== 'object' || c === null || c.format !== MEMBER_CARD_FORMAT)
    bad(`not a member card (its format must be ${MEMBER_CARD_FORMAT}; make one with loopchain member)`)
  // A card carries public parts only: one with a secret was made by hand, and the secret has left its institution.
  if ('secretKey' in c) bad('it holds a secretKey: a card must never carry one (the key is compromised: make a new one)')
  const extra = Object.keys(c).find((k) => !CARD_FIELDS.includes(k))
  if (extra !== undefined)
    bad(`${extra} is not a field of a member card (it holds ${CARD_FIELDS.join(', ')}; a card made by hand may carry what must stay home)`)
  if (typeof c.id !== 'string' || !MEMBER_ID.test(c.id))
    bad('id must be 1-64 lower-case letters, digits or dashes, starting with a letter or digit')
  if (typeof c.name !== 'string' || !nameFits(c.name)) bad(`name must be 1 to ${MEMBER_NAME_MAX_BYTES} bytes of text`)
  if (typeof c.publicKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(c.publicKey)) bad('publicKey must be 0x and 64 hex digits')
  if (!isAddress(c.address) || c.address !== accountAddress(fromHex(c.publicKey as string))) bad("address is not its publicKey's address")
  if (!Array.isArray(c.rights) || !c.rights.every((r) => typeof r === 'string')) bad('rights must be a list of rights')
  const rights = c.rights as string[]
  if (c.nodeKey === undefined && (rights.includes('validator') || rights.includes('member-node')))
    bad(
      `it asks for the ${rights.includes('validator') ? 'validator' : 'member-node'} right without a nodeKey: a member that runs a node needs one`,
    )
  if (c.nodeKey !== undefined) {
    if (typeof c.nodeKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(c.nodeKey)) bad('nodeKey must be 0x and 64 hex digits, or absent')
    // The node's public key, which its peer id is made from: a secret pasted in its place (a
    // config's nodeKey is the secret) gives another peer id, and is caught here, not published.
    if ((c.nodeKey as string).toLowerCase() === (c.publicKey as string).toLowerCase())
      bad('its nodeKey is its account key: a node needs a key of its own')
    if (c.peerId !== peerIdOf(fromHex(c.nodeKey as string)))
      bad(
        "its peerId is not its nodeKey's: the nodeKey must be the node's public key (as loopchain member writes it), never the secret of a config",
      )
  }
  if (c.power !== undefined && !(Number.isSafeInteger(c.power) && (c.power as number) > 0)) bad('power must be a positive whole number')
  return c as unknown as MemberCard
}

/** Sorted by the address's bytes, the genesis's order (an hx… before every cx…). */
const byAddress = (a: { address: string }, b: { address: string }) =>
  compareBytes(addressToBytes(a.address as Address), addressToBytes(b.address as Address))

/** `genesis new`: a genesis from member cards, written to a new file; prints its hash for every institution to check. */
export async function genesis(args: string[]): Promise<void> {
  const out = flag(args, 'out') ?? fail('genesis new needs --out FILE (e.g. genesis.json)')
  const files = args.flatMap((a, i) => (a === '--member' ? [args[i + 1] as string] : []))
  if (files.length === 0) fail('genesis new needs a --member FILE for each institution (made with loopchain member)')
  const { peerIdFromNodePublicKey } = await import('@loopchain/node')
  const cards = files.map((f) => readCard(f, peerIdFromNodePublicKey))
  // The same institution twice (a card sent twice, or two cards of one key): named by its files.
  cards.forEach((c, i) => {
    const j = cards.findIndex((d) => d.id === c.id || d.address === c.address || (c.nodeKey !== undefined && d.nodeKey === c.nodeKey))
    if (j < i)
      fail(
        `the member cards ${files[j]} and ${files[i]} share an id, an account or a node key: each institution sends one card of its own keys`,
      )
  })
  const chainId =
    flag(args, 'chain-id') ??
    fail('genesis new needs --chain-id ID (1-63 lower-case letters, digits or dashes; every topic, protocol and database key carries it)')
  const networkText = flag(args, 'network-id') ?? '1'
  if (!/^\d{1,9}$/.test(networkText)) fail(`--network-id must be a whole number, not '${networkText}'`)
  const emptyText = flag(args, 'empty-block-interval-ms') ?? '5000'
  if (!/^\d{1,9}$/.test(emptyText))
    fail(`--empty-block-interval-ms must be a whole number of milliseconds (0: no empty blocks), not '${emptyText}'`)
  const balances = args
    .flatMap((a, i) => (a === '--balance' ? [args[i + 1] as string] : []))
    .map((b) => {
      const m = /^((?:hx|cx)[0-9a-f]{40})=([1-9]\d*)$/.exec(b)
      if (!m) fail(`--balance ${b} must be ADDRESS=AMOUNT (hx… or cx…, and a whole number of the smallest unit above 0)`)
      return { address: m[1] as Address, amount: m[2] as string }
    })
    .sort(byAddress)
  balances.forEach((b, i) => {
    if (i > 0 && balances[i - 1]?.address === b.address) fail(`--balance names ${b.address} twice`)
  })
  const at = flag(args, 'timestamp')
  // With its zone: a time without one would be read in the zone of whoever runs this, and the hash with it.
  if (at !== undefined && !/(Z|[+-]\d\d:\d\d)$/.test(at))
    fail(`--timestamp ${at} needs its zone (Z or ±hh:mm, e.g. 2027-01-04T09:00:00Z): the genesis must not depend on where it is made`)
  const ms = at === undefined ? Date.now() : Date.parse(at)
  if (Number.isNaN(ms) || ms <= 0) fail(`--timestamp ${at} is not a date and time (ISO 8601, e.g. 2027-01-04T09:00:00Z)`)
  const validators = cards
    .filter((c) => c.rights.includes('validator'))
    .map((c) => ({ address: c.address, publicKey: c.publicKey, power: c.power ?? 1 }))
    .sort(byAddress)
  if (validators.length === 0) fail('no member card asks for the validator right: a chain needs at least one validator')
  const json = {
    chainId,
    networkId: Number(networkText),
    timestamp: ms * 1000,
    validators,
    // By address, whatever the order of --member: the same cards and time make the same genesis.
    members: cards
      .map((c) => ({ id: c.id, name: c.name, address: c.address, ...(c.nodeKey ? { nodeKey: c.nodeKey } : {}), rights: c.rights }))
      .sort(byAddress),
    balances,
    params: { emptyBlockIntervalMs: Number(emptyText) },
  }
  let g: ReturnType<typeof parseGenesis>
  let hash: Uint8Array
  try {
    g = parseGenesis(json)
    // Before anything is written: what parses may still not encode (a name too long for its field).
    hash = genesisHash(g)
  } catch (e) {
    // A member's index is its place in the sorted list: say which card it came from.
    const i = /members\[(\d+)\]/.exec((e as Error).message)
    const member = i ? json.members[Number(i[1])] : undefined
    const card = member ? ` (the member card ${files[cards.findIndex((c) => c.address === member.address)]})` : ''
    fail(`the genesis these cards make is not valid: ${(e as Error).message}${card}`)
  }
  writeNewFile(out, `${JSON.stringify(genesisToJson(g), null, 2)}\n`, 'genesis never overwrites a file')
  process.stdout.write(
    `${JSON.stringify({ file: resolve(out), chainId, genesisHash: to0x(hash), validators: validators.length, members: cards.length })}\n`,
  )
}

/**
 * `genesis check`: what a genesis file holds and its hash, read offline, for an institution to
 * review the file it was sent (the members, their rights and node keys, the validators) and to
 * compare the hash with the one the assembler published, before its node runs on it.
 */
export async function genesisCheck(args: string[]): Promise<void> {
  const file = flag(args, 'file') ?? fail('genesis check needs --file FILE (a genesis.json)')
  let g: ReturnType<typeof parseGenesis>
  let hash: Uint8Array
  try {
    g = parseGenesis(readJsonFile(file))
    hash = genesisHash(g)
  } catch (e) {
    fail(`the genesis ${file} cannot be used: ${(e as Error).message}`)
  }
  const { peerIdFromNodePublicKey } = await import('@loopchain/node')
  // The file's own form for what it spells out (rights by name, parameters); hashes, keys and peer ids added.
  const json = genesisToJson(g) as { members: { rights: string[] }[]; params: unknown }
  const summary = {
    file: resolve(file),
    chainId: g.chainId,
    networkId: g.networkId,
    genesisHash: to0x(hash),
    timestamp: new Date(g.timestamp / 1000).toISOString(),
    validators: g.validators.validators.map((v) => ({
      id: g.members.find((m) => m.address === v.address)?.id ?? null,
      address: v.address,
      power: v.power,
    })),
    members: g.members.map((m, i) => ({
      id: m.id,
      name: m.name,
      address: m.address,
      rights: json.members[i]?.rights,
      ...(m.nodeKey ? { nodeKey: to0x(m.nodeKey), peerId: peerIdFromNodePublicKey(m.nodeKey) } : {}),
    })),
    balances: g.balances.map((b) => ({ address: b.address, amount: b.amount.toString() })),
    // The chain's parameters as the file sets them: what an edit before publishing changed.
    params: json.params,
  }
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`)
}
