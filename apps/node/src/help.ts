/**
 * What the `loopchain` command says about itself (--help) and what each command takes
 * (`checkArgs`), side by side: a test holds every flag the help shows to the table, and every flag
 * of the table to the help.
 */
import type { FlagSpec } from './cli.js'

export const HELP = `loopchain — a permissioned blockchain node

Usage:
  loopchain init --validators N --out DIR [--chain-id ID] [--base-port P] [--empty-block-interval-ms MS]
      Make N validator key pairs, node keys, a genesis (DIR/genesis.json) and a config per
      node (DIR/node-i/config.json, and DIR/observer/config.json for a non-voting member node)
      whose peers find each other on 127.0.0.1, and DIR/faucet.json: a funded key that may deploy SCOREs.
      An idle chain makes an empty block every MS milliseconds (default 5000; 0: none), so that
      what counts blocks — a channel's challenge period, a payment's expiry — goes on. A DIR that
      holds a network already is refused: its keys are never written over.
      e.g.  loopchain init --validators 4 --out ./net
  loopchain start --config FILE [--exit-with-parent]
      Run a node from its config: LevelDB in the config's dataDir (and its blocks/), libp2p on its ports,
      JSON-RPC on its rpc port. Logs are JSON lines on stdout (LOOPCHAIN_LOG=debug for more). Stop
      with Ctrl-C (or SIGTERM); a node whose stdout is closed stops the same way (exit code 1). With --exit-with-parent (what devnet passes) it
      also stops when the process that started it exits, even if that one was killed (a starter may
      name itself in LOOPCHAIN_PARENT_PID). The config's secrets (validatorKey, nodeKey) may be kept in
      key files of their own instead (validatorKeyFile, nodeKeyFile: made by 'keys new --out'); a file
      holding a secret that other users may read is refused (chmod 600 it).
      e.g.  loopchain start --config ./net/node-0/config.json
  loopchain devnet [--validators N] [--dir DIR] [--base-port P] [--web-port P] [--no-web] [--fresh] [--stop-wait S]
      Run a local network: N validator processes (default 4) and an observer from DIR (default ./.devnet,
      made by 'init' on first use; --fresh starts over). Prints every node's JSON-RPC URL, each block
      once, the nodes' warnings and errors and the lines that say a warned problem ended (each node's
      whole log goes to DIR/<node>/node.log, the run before's to node.log.1), and serves
      the web app (certificate verification, payment channels, network view) at
      http://127.0.0.1:<base port + 100>/ (--web-port to choose, --no-web for none), building it
      first when its sources changed. The page's server has a test-funds faucet (POST /faucet
      {"address":"hx…"}: 1,000,000 from DIR/faucet.json), which only a devnet has.
      Ctrl-C stops them all (a node still running after --stop-wait seconds, default 20, is killed;
      Ctrl-C again kills at once); the data stays in DIR for the next run.
      e.g.  loopchain devnet --fresh
  loopchain status [--rpc URL] [--watch]
      The node's chain, height, role, last block, block sync and mempool, as JSON. --watch prints
      one line every 2 s instead (height; while it catches up, the target, blocks a second and the
      time left; the pool) until Ctrl-C, and says so when the node does not answer.
      e.g.  loopchain status --rpc http://127.0.0.1:27612/ --watch
  loopchain keys new [--out FILE]
      Make a fresh key pair (secret, public key, address): a key file for --key. With --out, write it
      to FILE (readable by its owner only; never over an existing file) and print only the public part;
      without, print it all as JSON.
      e.g.  loopchain keys new --out me.json

A network of institutions, each keeping its own secrets (see apps/node/docs/running-a-network.md):
  loopchain member --id ID --name NAME --key FILE [--node-key FILE] [--rights LIST] [--power N] [--out FILE]
      An institution's member card: the public parts of its account key (--key) and of its node's
      key (--node-key; both made with 'keys new --out'), the rights it asks for (default
      validator,member-node; also issuer, deployer, observer) and a validator's power (default 1).
      It holds no secret: send it to whoever makes the genesis. Printed, or written to a new FILE.
      e.g.  loopchain member --id bank-a --name 'Bank A' --key validator.json --node-key node.json --out bank-a.card.json
  loopchain genesis new --out FILE --chain-id ID --member FILE [--member FILE ...] [--balance ADDRESS=AMOUNT ...]
                        [--network-id N] [--timestamp ISO] [--empty-block-interval-ms MS]
      A genesis from the member cards (validators: the cards with the validator right), written to a
      new FILE. Prints its genesisHash: publish it where every institution can compare it with what
      'genesis check' reads from the file it was sent. --balance funds an account at genesis.
      e.g.  loopchain genesis new --chain-id consortium-1 --member bank-a.card.json --member bank-b.card.json --out genesis.json
  loopchain genesis check --file FILE
      What a genesis file holds (members, rights, node keys and peer ids, validators, balances,
      parameters) and its genesisHash, read offline: review the file you were sent and compare the
      hash with the published one before your node runs on it.
      e.g.  loopchain genesis check --file genesis.json

Transactions, signed with the key in FILE (JSON with secretKey, e.g. .devnet/faucet.json):
  loopchain tx send --key FILE --to ADDRESS --value N [--wait]
      Transfer N native tokens. Prints the transaction hash; --wait prints the receipt once the
      transaction is committed.
      e.g.  loopchain tx send --key .devnet/faucet.json --to hx… --value 1000 --wait
  loopchain tx deploy --key FILE --code FILE.js [--params JSON] [--to cx…] [--wait]
      Deploy a SCORE: one JavaScript module (see packages/core/docs/writing-a-score.md; a .ts file
      is compiled with esbuild first). --params go to its onInstall. Prints the SCORE's address
      (scoreAddress). With --to, register a new version of that SCORE instead (--params go to its onUpdate).
      The key's account needs the deployer right; the faucet of 'init' and 'devnet' has it.
      The example token's source comes from 'loopchain example token --out token.js'.
      e.g.  loopchain tx deploy --key .devnet/faucet.json --code token.js --params '{"_name":"Loop","_symbol":"LOOP","_decimals":18,"_initialSupply":1000}' --wait
  loopchain tx call --key FILE --to cx… --method NAME [--params JSON] [--value N] [--wait]
      Call a SCORE method in a transaction, so that it may change state; --value pays a payable method.
      e.g.  loopchain tx call --key .devnet/faucet.json --to cx… --method transfer --params '{"_to":"hx…","_value":10}' --wait
  Each also takes --rpc URL and --step-limit N. A committed transaction that failed exits 1.

Example SCOREs, to read and to deploy with 'tx deploy':
  loopchain example token [--out FILE]
      The source of an IRC-2-style token (name, symbol, decimals, totalSupply, balanceOf, transfer
      and a Transfer event; onInstall takes _name, _symbol, _decimals and _initialSupply). Printed,
      or written to FILE (never over an existing file).
      e.g.  loopchain example token --out token.js
  loopchain example escrow [--out FILE]
      The source of an escrow for one deal paid in that token (onInstall takes token, buyer, seller,
      amount and deadline); printed, or written to FILE.
      e.g.  loopchain example escrow --out escrow.js

Certificates (core docs/certificates.md), issued by a member with the issuer right (the validators of 'init'):
  loopchain cert issue --key FILE --subject TEXT [--subject-key 0x…] [--attr NAME=VALUE ...]
                       [--valid-from ISO] [--valid-until ISO] [--wait]
      Issue a certificate; the block that carries it signs it with its own one-time key. --valid-from
      defaults to now; without --valid-until it does not expire. With --wait, prints its id once the
      next block makes it provable.
      --key may be a validator's config (its validatorKey is its institution's account, an issuer on a devnet).
      e.g.  loopchain cert issue --key .devnet/node-0/config.json --subject 'Kim Minji' --attr degree=MSc --valid-until 2030-01-01 --wait
  loopchain cert renew --key FILE --id 0x… [same flags as issue] [--wait]
      Issue a certificate that replaces --id (which then reads as superseded). Flags left out keep the
      old certificate's values; the new window starts now and lasts as long as the old one.
  loopchain cert revoke --key FILE --id 0x… [--reason TEXT] [--wait]
      Revoke a certificate this key's institution issued.
  loopchain cert export --id 0x… [--out FILE] [--qr]
      The certificate's portable file: JSON with the header, signatures and proofs an offline check
      needs. --qr gives the compact text for a QR code instead (no proofs: it verifies only online).
  loopchain cert verify --file FILE [--genesis FILE] [--rpc URL]
      Verify a certificate file (or compact text) in six steps against the genesis you trust (default
      ./.devnet/genesis.json): well-formed, header committed by the validators, block-key signature,
      issuer's right, status, validity window. Offline the status step is skipped; with --rpc the
      node proves the status as of its latest block (and completes a compact form). Prints the report
      as JSON and each step on stderr; exits 0 when valid, 1 when a step fails, 3 when some could not run.
      e.g.  loopchain cert verify --file kim.json --rpc http://127.0.0.1:27602/
  The cert commands that send also take --rpc URL and --step-limit N.

Queries:
  loopchain call --to cx… --method NAME [--params JSON] [--rpc URL]
      Run a read-only SCORE method against the node's latest state: no key, nothing is written.
      e.g.  loopchain call --to cx… --method balanceOf --params '{"_owner":"hx…"}'

  --rpc defaults to http://127.0.0.1:27602/, node-0 of the devnet. --params is a JSON object of named
  parameters: integers as JSON numbers (tx deploy also takes decimal strings for its int parameters),
  addresses and text as strings. Bad input, an unreachable node and a JSON-RPC error exit 2 with a message.

  loopchain --help
      This text.
`

/**
 * The entries of {@link HELP} for the command a user asked about (`loopchain tx --help`, `loopchain
 * tx send -h`): each entry is its usage line and the indented lines under it, with the notes of
 * its group ("Each also takes --rpc URL …"), which hold for every entry of the group. Empty when
 * no entry starts with those words.
 */
export function helpFor(words: string[]): string {
  const prefix = `  loopchain ${words.join(' ')}`
  const out: string[] = []
  for (const group of HELP.split('\n\n')) {
    const lines = group.split('\n')
    let taking = false
    const picked = lines.filter((line) => {
      if (line.startsWith('  loopchain ')) taking = line === prefix || line.startsWith(`${prefix} `)
      else if (!line.startsWith('      ')) taking = false
      return taking
    })
    if (picked.length > 0) out.push(...picked, ...lines.filter((line) => /^ {2}[A-Z]/.test(line)))
  }
  return out.length === 0 ? '' : `Usage:\n${out.join('\n')}\n\n  loopchain --help lists every command.\n`
}

const SENDING = ['key', 'rpc', 'step-limit']
const CERT_TERMS = ['subject', 'subject-key', 'attr', 'valid-from', 'valid-until']
/** What each command takes (`checkArgs`): what {@link HELP} lists for it. */
export const COMMAND_FLAGS: Record<string, FlagSpec> = {
  init: { values: ['validators', 'out', 'chain-id', 'base-port', 'empty-block-interval-ms'] },
  start: { values: ['config'], switches: ['exit-with-parent'] },
  devnet: { values: ['validators', 'dir', 'base-port', 'web-port', 'stop-wait'], switches: ['no-web', 'fresh'] },
  status: { values: ['rpc'], switches: ['watch'] },
  'keys new': { values: ['out'] },
  member: { values: ['id', 'name', 'key', 'node-key', 'rights', 'power', 'out'] },
  'genesis new': {
    values: ['out', 'member', 'chain-id', 'network-id', 'balance', 'timestamp', 'empty-block-interval-ms'],
    repeatable: ['member', 'balance'],
  },
  'genesis check': { values: ['file'] },
  'example token': { values: ['out'] },
  'example escrow': { values: ['out'] },
  'tx send': { values: [...SENDING, 'to', 'value'], switches: ['wait'] },
  'tx deploy': { values: [...SENDING, 'code', 'params', 'to'], switches: ['wait'] },
  'tx call': { values: [...SENDING, 'to', 'method', 'params', 'value'], switches: ['wait'] },
  call: { values: ['rpc', 'to', 'method', 'params'] },
  'cert issue': { values: [...SENDING, ...CERT_TERMS], switches: ['wait'], repeatable: ['attr'] },
  'cert renew': { values: [...SENDING, 'id', ...CERT_TERMS], switches: ['wait'], repeatable: ['attr'] },
  'cert revoke': { values: [...SENDING, 'id', 'reason'], switches: ['wait'] },
  'cert export': { values: ['rpc', 'id', 'out'], switches: ['qr'] },
  'cert verify': { values: ['rpc', 'file', 'genesis'] },
}
