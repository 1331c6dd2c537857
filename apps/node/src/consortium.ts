/**
 * A network of institutions made without any one of them holding another's secrets (`init` makes
 * every key in one place: right for a devnet, not for banks):
 *
 * - `member`: an institution turns its own key files (`keys new --out`) into a member card — the
 *   public parts a genesis needs (account address and public key, the node's public key and the
 *   peer id others bootstrap to, the rights asked for) — and sends the card, never a secret.
 * - `genesis`: whoever assembles the network makes the genesis from the cards and prints its hash,
 *   which every institution checks against what its own node reports before it trusts the file.
 *
 * Institutions that come later join a running network through governance (`addMember`,
 * `addValidator`), with the same card's public parts.
 */
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import {
  type Address,
  accountAddress,
  fromHex,
  genesisHash,
  genesisToJson,
  isAddress,
  keyPairFromSecret,
  parseGenesis,
  to0x,
  toHex,
} from '@loopchain/core'
import { nativeCrypto } from '@loopchain/node/client'
import { fail, flag, writeNewFile } from './cli.js'
import { readSecretKeyFile } from './config.js'

/** What a member card's `format` says: a card of another form is refused, not guessed at. */
export const MEMBER_CARD_FORMAT = 'loopchain-member/1'

/** The rights a card may ask for (the genesis's names); without `--rights`, what a validating institution needs. */
const RIGHT_NAMES = ['validator', 'member-node', 'issuer', 'deployer', 'observer'] as const
const DEFAULT_RIGHTS = ['validator', 'member-node']

/** A member card: an institution's public parts, as `member` writes them and `genesis` reads them. */
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
 * see {@link readSecretKeyFile}), or its `publicKey` when it holds only the public part (what
 * `keys new --out` prints). `address`, when there, must be the key's.
 */
function publicKeyOf(file: string, what: string): Uint8Array {
  let j: { secretKey?: unknown; publicKey?: unknown; address?: unknown }
  try {
    j = JSON.parse(readFileSync(file, 'utf8'))
  } catch (e) {
    fail(`cannot read ${what} ${file}: ${(e as Error).message}`)
  }
  if (j.secretKey !== undefined) {
    try {
      return keyPairFromSecret(fromHex(readSecretKeyFile(file, what)), nativeCrypto).publicKey
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
  if (!/^[a-z0-9][a-z0-9-]{0,63}$/.test(id))
    fail(`--id ${id} must be 1-64 lower-case letters, digits or dashes, starting with a letter or digit`)
  const name = flag(args, 'name') ?? fail('member needs --name NAME (the institution as people know it)')
  if (name.trim() === '' || new TextEncoder().encode(name).length > 128) fail('--name must be 1 to 128 bytes of text')
  const keyFile = flag(args, 'key') ?? fail("member needs --key FILE: the institution's account key (loopchain keys new --out FILE)")
  const publicKey = publicKeyOf(keyFile, 'the account key file')
  const nodeFile = flag(args, 'node-key')
  const nodeKey = nodeFile === undefined ? undefined : publicKeyOf(nodeFile, 'the node key file')
  const rights = (flag(args, 'rights') ?? DEFAULT_RIGHTS.join(',')).split(',').map((r) => r.trim())
  for (const r of rights)
    if (!(RIGHT_NAMES as readonly string[]).includes(r)) fail(`--rights: '${r}' is not a right; the rights are ${RIGHT_NAMES.join(', ')}`)
  if (new Set(rights).size !== rights.length) fail('--rights names a right twice')
  if (nodeKey !== undefined && toHex(nodeKey) === toHex(publicKey))
    fail('--node-key is the account key: a node needs a key of its own (loopchain keys new --out node.json)')
  if (rights.includes('member-node') && nodeKey === undefined)
    fail('the member-node right is for a member that runs a node: give its key with --node-key FILE, or leave the right out of --rights')
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

/** Reads and checks one member card; `fail`s naming the file. */
function readCard(file: string): MemberCard {
  let c: Record<string, unknown>
  try {
    c = JSON.parse(readFileSync(file, 'utf8'))
  } catch (e) {
    fail(`cannot read the member card ${file}: ${(e as Error).message}`)
  }
  const bad = (what: string): never => fail(`the member card ${file}: ${what}`)
  if (typeof c !== 'object' || c === null || c.format !== MEMBER_CARD_FORMAT)
    bad(`not a member card (its format must be ${MEMBER_CARD_FORMAT}; make one with loopchain member)`)
  // A card carries public parts only: one with a secret was made by hand, and the secret has left its institution.
  if ('secretKey' in c) bad('it holds a secretKey: a card must never carry one (the key is compromised: make a new one)')
  if (typeof c.publicKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(c.publicKey)) bad('publicKey must be 0x and 64 hex digits')
  if (!isAddress(c.address) || c.address !== accountAddress(fromHex(c.publicKey as string))) bad("address is not its publicKey's address")
  if (c.nodeKey !== undefined && (typeof c.nodeKey !== 'string' || !/^0x[0-9a-fA-F]{64}$/.test(c.nodeKey)))
    bad('nodeKey must be 0x and 64 hex digits, or absent')
  if (!Array.isArray(c.rights) || !c.rights.every((r) => typeof r === 'string')) bad('rights must be a list of rights')
  if (c.power !== undefined && !(Number.isSafeInteger(c.power) && (c.power as number) > 0)) bad('power must be a positive whole number')
  return c as unknown as MemberCard
}

/** `genesis`: a genesis from member cards, written to a new file; prints its hash for every institution to check. */
export function genesis(args: string[]): void {
  const out = flag(args, 'out') ?? fail('genesis needs --out FILE (e.g. genesis.json)')
  const files = args.flatMap((a, i) => (a === '--member' ? [args[i + 1] as string] : []))
  if (files.length === 0) fail('genesis needs a --member FILE for each institution (made with loopchain member)')
  const cards = files.map(readCard)
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
    fail('genesis needs --chain-id ID (1-63 lower-case letters, digits or dashes; every topic, protocol and database key carries it)')
  const networkText = flag(args, 'network-id') ?? '1'
  if (!/^\d{1,9}$/.test(networkText)) fail(`--network-id must be a whole number, not '${networkText}'`)
  const emptyText = flag(args, 'empty-block-interval-ms') ?? '5000'
  if (!/^\d{1,9}$/.test(emptyText))
    fail(`--empty-block-interval-ms must be a whole number of milliseconds (0: no empty blocks), not '${emptyText}'`)
  const balances = args
    .flatMap((a, i) => (a === '--balance' ? [args[i + 1] as string] : []))
    .map((b) => {
      const m = /^(hx[0-9a-f]{40}|cx[0-9a-f]{40})=([1-9]\d*)$/.exec(b)
      if (!m) fail(`--balance ${b} must be ADDRESS=AMOUNT (hx… and a whole number of the smallest unit, above 0)`)
      return { address: m[1] as string, amount: m[2] as string }
    })
    .sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0))
  const at = flag(args, 'timestamp')
  const ms = at === undefined ? Date.now() : Date.parse(at)
  if (Number.isNaN(ms) || ms <= 0) fail(`--timestamp ${at} is not a date and time (ISO 8601, e.g. 2027-01-04T09:00:00Z)`)
  // Validators sorted by address, as init writes them; parseGenesis checks the rest (ids, repeats, rights).
  const validators = cards
    .filter((c) => c.rights.includes('validator'))
    .map((c) => ({ address: c.address, publicKey: c.publicKey, power: c.power ?? 1 }))
    .sort((a, b) => (a.address < b.address ? -1 : 1))
  if (validators.length === 0) fail('no member card asks for the validator right: a chain needs at least one validator')
  const json = {
    chainId,
    networkId: Number(networkText),
    timestamp: ms * 1000,
    validators,
    members: cards.map((c) => ({
      id: c.id,
      name: c.name,
      address: c.address,
      ...(c.nodeKey ? { nodeKey: c.nodeKey } : {}),
      rights: c.rights,
    })),
    balances,
    params: { emptyBlockIntervalMs: Number(emptyText) },
  }
  let g: ReturnType<typeof parseGenesis>
  try {
    g = parseGenesis(json)
  } catch (e) {
    // The field's index is the card's: say which file it came from.
    const path = /members\[(\d+)\]/.exec((e as Error).message)
    const card = path ? ` (the member card ${files[Number(path[1])]})` : ''
    fail(`the genesis these cards make is not valid: ${(e as Error).message}${card}`)
  }
  writeNewFile(out, `${JSON.stringify(genesisToJson(g), null, 2)}\n`, 'genesis never overwrites a file')
  process.stdout.write(
    `${JSON.stringify({
      file: resolve(out),
      chainId,
      genesisHash: to0x(genesisHash(g)),
      validators: validators.length,
      members: cards.length,
    })}\n`,
  )
}
