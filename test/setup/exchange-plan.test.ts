import { describe, expect, it } from 'vitest';
import { ConfigurationError } from '../../src/errors.js';
import {
  EXCHANGE_PLAN_KEYS,
  type ExchangePlanInput,
  exchangeSectionOf,
  parseExchangePlan,
} from '../../src/setup/exchange-plan.js';

const APP_ID = '11111111-2222-3333-4444-555555555555';
const OBJECT_ID = '66666666-7777-8888-9999-aaaaaaaaaaaa';

const valid: ExchangePlanInput = {
  tenant: 'contoso.onmicrosoft.com',
  appId: APP_ID,
  objectId: OBJECT_ID,
  mailboxes: ['archive@contoso.com'],
};

function problemsOf(input: ExchangePlanInput): { field: string; message: string }[] {
  try {
    parseExchangePlan(input);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).code).toBe('SETUP_PLAN_INVALID');
    expect((error as ConfigurationError).exitCode).toBe(2);
    return (error as ConfigurationError).problems;
  }
  throw new Error('expected the plan to be refused');
}

describe('parseExchangePlan', () => {
  it('fills in the defaults', () => {
    expect(parseExchangePlan(valid)).toEqual({
      tenant: 'contoso.onmicrosoft.com',
      appId: APP_ID,
      objectId: OBJECT_ID,
      displayName: 'mailbridge',
      mailboxes: ['archive@contoso.com'],
      protocols: ['imap', 'smtp'],
      sendAs: false,
      enableProtocols: false,
      cloud: 'global',
      remove: false,
    });
  });

  it('normalises GUIDs to lower case, trims, orders protocols and dedupes mailboxes', () => {
    const plan = parseExchangePlan({
      tenant: ' 3F2504E0-4F89-11D3-9A0C-0305E82C3301 ',
      appId: APP_ID.toUpperCase(),
      objectId: OBJECT_ID.toUpperCase(),
      displayName: "O'Brien $(x) `n; robot",
      mailboxes: [
        'B@contoso.com',
        { address: 'a@contoso.com', source: 'list.csv line 2' },
        'b@CONTOSO.com',
      ],
      protocols: 'smtp, POP ,imap',
      sendAs: true,
      enableProtocols: true,
      cloud: 'usgov-dod',
      remove: true,
    });
    expect(plan).toEqual({
      tenant: '3f2504e0-4f89-11d3-9a0c-0305e82c3301',
      appId: APP_ID,
      objectId: OBJECT_ID,
      displayName: "O'Brien $(x) `n; robot",
      mailboxes: ['B@contoso.com', 'a@contoso.com'],
      protocols: ['imap', 'pop', 'smtp'],
      sendAs: true,
      enableProtocols: true,
      cloud: 'usgov-dod',
      remove: true,
    });
  });

  it('accepts protocols as a list', () => {
    expect(parseExchangePlan({ ...valid, protocols: ['pop'] }).protocols).toEqual(['pop']);
  });

  it('reports every problem at once, by field', () => {
    expect(
      problemsOf({
        tenant: 'common',
        appId: 'not-a-guid',
        mailboxes: [
          'ok@contoso.com',
          "x@y.com'; Remove-Mailbox -Identity ceo; '",
          { address: '$(Invoke-Evil)@x.com', source: 'list.csv line 7' },
          42,
        ],
        protocols: 'imap,ftp',
        cloud: 'mars',
        sendAs: 'yes',
        displayName: 'O\u2019Brien',
      }).map((p) => p.field),
    ).toEqual([
      'tenant',
      'appId',
      'objectId',
      'displayName',
      'mailboxes[1]',
      'list.csv line 7',
      'mailboxes[3]',
      'protocols',
      'cloud',
      'sendAs',
    ]);
  });

  it('says what the missing values are', () => {
    expect(problemsOf({})).toEqual([
      {
        field: 'tenant',
        message: 'the tenant (directory id or verified domain, --tenant) is required',
      },
      { field: 'appId', message: 'the application (client) id (--app-id) is required' },
      {
        field: 'objectId',
        message:
          "the Enterprise Application's (service principal's) object id (--object-id) is required",
      },
      {
        field: 'mailboxes',
        message: 'at least one mailbox is required (--mailbox ADDRESS or --mailboxes FILE)',
      },
    ]);
  });

  it('refuses an object id equal to the app id', () => {
    expect(problemsOf({ ...valid, objectId: APP_ID.toUpperCase() })).toEqual([
      {
        field: 'objectId',
        message:
          "it equals the application id: give the object id shown on the Enterprise Application's overview page (Entra ID > Enterprise applications), not the application id",
      },
    ]);
  });

  it('refuses SendAs without smtp', () => {
    expect(problemsOf({ ...valid, protocols: 'imap', sendAs: true })).toEqual([
      { field: 'sendAs', message: 'SendAs is for sending over SMTP: add smtp to the protocols' },
    ]);
  });

  it('refuses an empty protocol list and a mailbox list that is not a list', () => {
    expect(problemsOf({ ...valid, protocols: ',', mailboxes: 'a@contoso.com' })).toEqual([
      {
        field: 'mailboxes',
        message: 'must be a list of addresses, not the text "a@contoso.com"',
      },
      { field: 'protocols', message: 'name at least one of: imap, pop, smtp' },
    ]);
  });

  it.each([
    ['a newline', 'a@contoso.com\nb@contoso.com'],
    ['a backtick', 'a`@contoso.com'],
    ['$(', '$(x)@contoso.com'],
    ['a semicolon', 'a;b@contoso.com'],
    ['a typographic quote', 'o\u2019brien@contoso.com'],
    ['quote injection', "a@contoso.com'; Remove-Mailbox ceo; '"],
  ])('refuses a mailbox with %s', (_name, address) => {
    expect(problemsOf({ ...valid, mailboxes: [address] }).map((p) => p.field)).toEqual([
      'mailboxes[0]',
    ]);
  });

  it('accepts an address with an apostrophe (a real Exchange address)', () => {
    expect(parseExchangePlan({ ...valid, mailboxes: ["o'brien@contoso.com"] }).mailboxes).toEqual([
      "o'brien@contoso.com",
    ]);
  });
});

describe('exchangeSectionOf', () => {
  const SECRET_KEY = 'Xy7Q~abcdefghijklmnopqrstuvwxyz0123456789AB';

  it('reads the setup.exchange values and leaves other setup sections alone', () => {
    expect(
      exchangeSectionOf({ setup: { entra: { any: 1 }, exchange: { tenant: 'contoso.com' } } }),
    ).toEqual({ values: { tenant: 'contoso.com' }, problems: [] });
    expect(exchangeSectionOf({})).toEqual({ values: {}, problems: [] });
    expect(exchangeSectionOf({ setup: { exchange: null } })).toEqual({ values: {}, problems: [] });
  });

  it('refuses unknown keys with a did-you-mean, never showing a secret-shaped key', () => {
    expect(
      exchangeSectionOf({
        setup: { exchange: { objectid: OBJECT_ID, [SECRET_KEY]: 'x', color: 'red' } },
      }).problems,
    ).toEqual([
      {
        field: 'setup.exchange.objectid',
        message:
          "Unknown setting 'setup.exchange.objectid': did you mean 'setup.exchange.objectId'?",
      },
      {
        field: 'setup.exchange.(unknown key)',
        message: `Unknown setting in setup.exchange, (a key of ${SECRET_KEY.length} characters that is no setting name, not shown in case it is a misplaced secret). Known: ${EXCHANGE_PLAN_KEYS.join(', ')}.`,
      },
      {
        field: 'setup.exchange.color',
        message: `Unknown setting 'setup.exchange.color'. Known: ${EXCHANGE_PLAN_KEYS.join(', ')}.`,
      },
    ]);
  });

  it('says which level is not a mapping', () => {
    expect(exchangeSectionOf({ setup: 'exchange' }).problems).toEqual([
      { field: 'setup', message: 'setup must be a mapping with an exchange section.' },
    ]);
    expect(exchangeSectionOf({ setup: { exchange: ['tenant'] } }).problems).toEqual([
      { field: 'setup.exchange', message: 'setup.exchange must be a mapping of plan values.' },
    ]);
  });
});
