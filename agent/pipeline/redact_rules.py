"""What redaction masks, as data: names that hold secrets, per-tool conventions, token shapes.

Every rule has a name; ``[agent] redact_disable = name, ...`` turns rules off (``agentd
default-config`` lists the option; ``agentd redact-rules`` is not needed: the names are the
``name`` fields below). ``redact_patterns`` adds regular expressions, ``redact_names`` adds
secret names (matched like the built-in ones, case-insensitively, whole name).

The principle: a value is masked because of what it is in the tool's own convention (the
manual's "-P password" of ipmitool, the ``NAME=VALUE`` whose NAME is a password), never
because a keyword appears somewhere inside a longer word. ``ssh -p`` and ``scp -P`` are ports,
``sshpass -p`` and ``ipmitool -P`` are passwords; ``PubkeyAuthentication=yes`` is an option.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- names -------------------------------------------------------------------------------------
# A name (environment variable, option, key=value key, header, JSON/YAML key) is split into
# parts at ``_ - .`` and camelCase: ``rootPassword`` -> root, password. It holds a secret when
# its LAST part is (or ends with) one of these words; parts like ``file``, ``path``, ``ttl``,
# ``limit`` after the secret word make it a reference or a setting (PASSWORD_FILE, TOKEN_LIMIT).
SECRET_SUFFIXES = ("password", "passwd", "passphrase", "passcode", "token", "secret", "apikey",
                   "authorization", "cookie", "bearer")
# last parts that are secret only as a whole part (``pass`` but not ``bypass``)
SECRET_PARTS = {"pass", "pwd", "pw", "psk", "pin", "puk", "signature", "sig", "pat"}
# ``<prefix>key`` / ``<prefix>_key``: a key that is a credential, not a key id or a key file
KEY_PREFIXES = {"api", "secret", "private", "master", "encryption", "enc", "signing", "license", "auth",
                "account", "hmac", "jwt", "session", "consumer", "subscription", "client", "storage",
                "shared", "app", "application", "routing", "integration", "webhook", "ingest", "sas",
                "preshared", "crypt", "cipher", "aes", "admin", "root", "write", "deploy", "service", "unseal",
                "recovery", "certificate", "hec", "ingestion"}
# ... and as one word (``apikey``, ``AccountKey``); not ``signingkey`` (git's user.signingkey is a key id)
COMPOUND_KEY_PREFIXES = {"api", "secret", "private", "master", "encryption", "license", "account", "sharedaccess",
                         "consumer", "subscription", "routing", "storage", "app", "client", "access", "auth"}
# a part anywhere before the last that makes the name a switch or a reference, not a value:
# --no-password, --ask-become-pass, ALLOW_EMPTY_PASSWORD, auth.existingSecret, --with-token
NEGATING_PARTS = {"no", "ask", "prompt", "show", "skip", "reset", "allow", "require", "required",
                  "empty", "use", "with", "existing", "generate", "random", "change", "check", "disable",
                  "enable", "expire", "print", "stdin", "has", "is"}
# words ending in "pass" that are not passwords
NOT_PASS = {"bypass", "compass", "surpass", "trespass", "overpass", "underpass", "encompass", "askpass",
            "nopass", "impass", "multipass", "onepass", "firstpass", "secondpass"}
# names matched whole (after lower-casing), whatever the rules above say
SECRET_NAMES = {"pgpassword", "sshpass", "mysql_pwd", "rediscli_auth", "_auth", "secret_id", "masterauth",
                "requirepass", "basic_auth", "http_auth", "proxy_auth", "x-jfrog-art-api", "geniekey",
                "client_secret", "privatekey", "user_pw", "owner_pw", "input_pw", "sharedaccesskey",
                "secret_key_base", "sonar.login", "pwd"}
NOT_SECRET_NAMES = {"nopasswd", "nopassword", "passwd", "oldpwd"}
# option names (--name value) that name a stored secret or a file rather than hold one
NOT_SECRET_OPTIONS = {"secret", "signature", "sig", "cookie", "cookies"}
# names whose value is not a secret when it is a path (PWD=/home/bob is the shell's directory;
# ODBC's PWD=x is a password; SSH_KEY=~/.ssh/id is a file)
PATH_MEANS_REFERENCE = ("pwd", "key", "keys", "cert", "pem")
SECRET_NAME_PREFIXES = ("tf_token_", "pypi-token.")
# values that are not secrets whatever the name: switches and references
BOOLISH = {"yes", "no", "true", "false", "on", "off", "none", "null", "0", "1", "-", "prompt", "required",
           "optional", "stdin", "env", "file", "ask"}

# --- per-tool conventions ------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Tool:
    """How one family of programs takes a secret on its command line (see each tool's manual).

    progs: regular expression matched against the program's base name.
    value: options whose value is the secret: ``-P pw``, ``-Ppw``, ``--password pw``, ``--password=pw``.
    attached: options whose secret only counts attached (``mysql -pX``; ``-p X`` prompts, X is a database).
    userpass: option -> separator: only what follows the separator is secret (``curl -u user:pw``).
    value_after: word -> options that carry a secret only once that word was seen (``docker login -p``).
    value_when: word -> options that carry a secret when that word is anywhere in the command.
    positional: (words after which to count, positions) for secrets given as operands
        (``vault login TOKEN``); positions are 0-based after the words, or "last" / "all".
    positional_if_flag: a short flag letter that must be set for the positional rule (htpasswd -b).
    pairs_after: words after which operands come as NAME VALUE pairs (``aws configure set NAME VALUE``).
    takes: options that consume the next word (so operands are counted right).
    nogeneric: options the generic ``--<secret-name>`` rule must leave alone for this tool.
    stdin: flags that make the program read a secret from stdin ("" = always): a literal ``echo X |``
        or ``<<< X`` feeding it is masked.
    slash_creds: operands ``user/password@db`` (Oracle tools).
    prefixed: word prefixes after which the rest is secret (``xfreerdp /p:pw``).
    keep_values: values that are well-known defaults, not secrets (SNMP's ``public``).
    """
    name: str
    progs: str
    value: tuple = ()
    attached: tuple = ()
    userpass: dict = field(default_factory=dict)
    value_after: dict = field(default_factory=dict)
    value_when: dict = field(default_factory=dict)
    positional: tuple = ()
    positional_if_flag: str = ""
    pairs_after: tuple = ()
    takes: tuple = ()
    nogeneric: tuple = ()
    stdin: tuple = ()
    stdin_sep: str = ""
    slash_creds: bool = False
    prefixed: tuple = ()
    keep_values: tuple = ()
    short_attached: bool = True     # -Pvalue is -P value (getopt); False for single-dash long options
    value_if_eq: tuple = ()         # options whose value is secret when it holds "=" (curl -b 'name=value')
    first_operand: str = ""         # regex the first operand must match for `positional` to apply
    prefixed_after: dict = field(default_factory=dict)   # word -> prefixes of later operands (ACL SETUSER >pw)
    first_word_only: bool = False    # a program only as the first word of a command (sqlplus's CONNECT)
    userhost_operands: bool = False  # operands ``[domain/]user:password@host`` (impacket)


_LOGIN_TOOLS = r"docker|podman|nerdctl|buildah|skopeo|helm|oras|crane|regctl|finch|oc|apptainer|singularity"

TOOLS = (
    Tool("mysql", r"mysql|mariadb|mysqldump|mysqladmin|mysqlimport|mysqlcheck|mysqlshow|mysqlslap|mysqlbinlog|"
         r"mysqlpump|mysqlsh|mariadb-[\w-]+|mysql_[\w]+", attached=("-p", "--password"), userpass={"--uri": ":"},
         nogeneric=("--password",), positional=((("password",), (0,)),),
         takes=("-u", "-h", "-P", "-e", "-D", "-S", "--user", "--host", "--port")),
    Tool("mydumper", r"mydumper|myloader", value=("-p", "--password")),
    Tool("mongodb", r"mongo|mongosh|mongodump|mongorestore|mongoexport|mongoimport|mongostat|mongotop|mongofiles",
         value=("-p", "--password")),
    Tool("redis", r"redis-cli|keydb-cli|valkey-cli", value=("-a", "--pass", "--password"),
         positional=((("auth",), "all"),), pairs_after=(("config", "set"),), prefixed_after={"setuser": (">",)},
         takes=("-h", "-p", "-a", "-n", "-u", "-s", "--user", "--pass", "-r", "-i", "--tls-cert", "--cacert")),
    Tool("sqlserver", r"sqlcmd|bcp|osql|tsql|mssql-cli", value=("-P",)),
    Tool("odbc-isql", r"isql|iusql", positional=(((), (2,)),)),
    Tool("oracle", r"sqlplus|sqlldr|expdp|impdp|exp|imp|rman|dgmgrl|sqlcl|sql", slash_creds=True),
    Tool("oracle-connect", r"conn|connect", slash_creds=True, first_word_only=True),    # typed in sqlplus
    Tool("sshpass", r"sshpass", value=("-p",)),
    Tool("ipmitool", r"ipmitool|ipmiutil", value=("-P", "-k", "-y"),
         positional=((("user", "set", "password"), (1,)),),
         takes=("-I", "-H", "-U", "-P", "-p", "-L", "-f", "-k", "-y", "-t", "-b", "-T", "-B", "-C", "-K", "-o", "-O")),
    Tool("freeipmi", r"ipmi-[\w-]+|ipmipower|ipmiconsole|ipmidetect|bmc-[\w-]+", value=("-p", "--password", "-k", "--k-g")),
    Tool("bmc", r"racadm|idracadm\d*|ilorest|redfishtool|sum|hponcfg|onecli|ilo-cli", value=("-p", "--password"),
         pairs_after=(("set",),), userpass={"--bmc": ":", "-b": ":"}),
    Tool("smcipmitool", r"SMCIPMITool|smcipmitool", positional=(((), (2,)),)),
    Tool("registry-login", _LOGIN_TOOLS, value_after={"login": ("-p",)},
         userpass={"--creds": ":", "--src-creds": ":", "--dest-creds": ":"},
         nogeneric=("--secret",), stdin=("--password-stdin",)),
    Tool("container-secret", r"docker|podman", stdin=("create",)),
    Tool("vault", r"vault|bao", positional=((("login",), (0,)), (("operator", "unseal"), (0,)), (("unseal",), (0,)))),
    Tool("cargo", r"cargo", positional=((("login",), (0,)),), takes=("--registry",)),
    Tool("htpasswd", r"htpasswd|mosquitto_passwd", positional=(((), "last"),), positional_if_flag="b",
         takes=("-C", "-r"), stdin=("-i",)),
    Tool("openssl", r"openssl", value=("-k", "-K"), short_attached=False, positional=((("passwd",), "all"),),
         nogeneric=("-pass", "-passin", "-passout", "-password"), takes=("-salt", "-in", "-out")),
    Tool("mkpasswd", r"mkpasswd", positional=(((), (0,)),), takes=("-m", "-S", "-R", "-P", "--method", "--salt", "--rounds")),
    Tool("samba", r"smbclient|rpcclient|smbcacls|smbget|smbtree|smbcquotas|net|winexe|samba-tool|smbspool|nmblookup",
         userpass={"-U": "%", "--user": "%", "--username": "%"},
         positional=((("user", "create"), (1,)), (("user", "add"), (1,)), (("rpc", "password"), (1,))),
         stdin=()),
    Tool("smbclient-service-password", r"smbclient", positional=(((), (1,)),), first_operand=r"//|\\\\",
         takes=("-U", "-W", "-c", "-I", "-p", "-m", "-A", "-n", "-O", "-R", "-s", "-l", "-d", "-t", "-T", "-D",
                "-b", "-L", "-M", "--user", "--workgroup", "--command", "--port", "--authentication-file")),
    Tool("wbinfo", r"wbinfo", userpass={"-a": "%", "--authenticate": "%"}),
    Tool("smbpasswd", r"smbpasswd", stdin=("-s",)),
    Tool("lftp", r"lftp|open", userpass={"-u": ","}),
    Tool("ncftp", r"ncftp|ncftpget|ncftpput|ncftpls", value=("-p",)),
    Tool("curl", r"curl", userpass={"-u": ":", "--user": ":", "-U": ":", "--proxy-user": ":", "-E": ":", "--cert": ":"},
         value_if_eq=("-b", "--cookie")),
    Tool("httpie", r"http|https|xh|xhs", userpass={"-a": ":", "--auth": ":"}),
    Tool("ldap", r"ldap\w+", value=("-w",)),
    Tool("ldappasswd", r"ldappasswd", value=("-s", "-a")),
    Tool("snmp", r"snmp\w+", value=("-A", "-X", "-c"), keep_values=("public",)),
    Tool("zip", r"zip|unzip|zipcloak|zipnote", value=("-P", "--password")),
    Tool("7z", r"7z|7za|7zr|7zz|p7zip", attached=("-p",)),
    Tool("rar", r"rar|unrar", attached=("-p", "-hp")),
    Tool("ssh-keygen", r"ssh-keygen", value=("-N", "-P")),
    Tool("sudo-stdin", r"sudo", stdin=("-S", "--stdin")),
    Tool("passwd-stdin", r"passwd|cryptsetup|kinit|veracrypt|realm", stdin=("",)),
    Tool("stdin-flags", r"gh|openconnect|adcli|sshfs|vault|bao|openssl",
         stdin=("--with-token", "--passwd-on-stdin", "--stdin-password", "password_stdin", "-", "stdin")),
    Tool("vncpasswd", r"vncpasswd|x11vnc", stdin=("-f", "-storepasswd")),
    Tool("chpasswd", r"chpasswd|chgpasswd", stdin=("",), stdin_sep=":"),
    Tool("useradd", r"useradd|usermod|adduser", value=("-p",)),
    Tool("wpa_passphrase", r"wpa_passphrase", positional=(((), (1,)),)),
    Tool("nmcli", r"nmcli", pairs_after=((),), takes=("-f", "-g", "-w", "--fields", "--get-values", "--wait")),
    Tool("aws", r"aws", pairs_after=(("configure", "set"),), value=("--secret-string",),
         value_when={"SecureString": ("--value",)}, takes=("--profile", "--region", "--output", "--endpoint-url")),
    Tool("azure", r"az", value=("-p",), value_when={"secret": ("--value",)}),
    Tool("git-config", r"git", pairs_after=(("config",),), takes=("-C", "-c", "--file", "-f")),
    Tool("npm-config", r"npm|yarn|pnpm", pairs_after=(("config", "set"),)),
    Tool("rclone", r"rclone", pairs_after=(("config",),), positional=((("obscure",), (0,)),), takes=("--config",)),
    Tool("minio-mc", r"mc|mcli", positional=((("alias", "set"), (3,)), (("config", "host", "add"), (3,)),
                                            (("admin", "user", "add"), (2,)))),
    Tool("slappasswd", r"slappasswd", value=("-s",)),
    Tool("nagios-plugins", r"check_mysql|check_mysql_query|check_pgsql|check_ldaps?|check_smtp|check_snmp",
         value=("-p", "-P", "-C", "-A", "-X"), keep_values=("public",)),
    Tool("nagios-http", r"check_http|check_curl", userpass={"-a": ":", "--authorization": ":", "-b": ":"}),
    Tool("pk12util", r"pk12util|certutil|modutil", value=("-W", "-K")),
    Tool("bitwarden", r"bw", positional=((("unlock",), (0,)), (("login",), (1,))),
         takes=("--passwordenv", "--passwordfile", "--session", "--method", "--code")),
    Tool("ansible-vault", r"ansible-vault", positional=((("encrypt_string",), (0,)),), takes=("--name", "-n",
         "--vault-id", "--vault-password-file", "--output")),
    Tool("jenkins-cli", r"jenkins-cli(?:\.jar)?", userpass={"-auth": ":"}),
    Tool("govc", r"govc", userpass={"-u": ":"}),
    Tool("wpa_cli", r"wpa_cli", pairs_after=((),)),
    Tool("setenv", r"setenv|launchctl", pairs_after=((),)),      # csh: setenv NAME value
    Tool("rabbitmq", r"rabbitmqctl", positional=((("add_user",), (1,)), (("change_password",), (1,)),
                                                  (("authenticate_user",), (1,))), takes=("-n", "-p", "-q")),
    Tool("rabbitmqadmin", r"rabbitmqadmin|cqlsh|cypher-shell|couchbase-cli|elasticsearch-users|twine|poetry|"
         r"rdesktop|evil-winrm|crackmapexec|cme|nxc|netexec|smbmap|hydra|medusa|enum4linux(?:-ng)?|"
         r"esxcli", value=("-p",)),
    Tool("orapki", r"orapki|mkstore", value=("-pwd",)),
    Tool("nodetool", r"nodetool", value=("-pw",)),
    Tool("neo4j", r"neo4j-admin", positional=((("set-initial-password",), (0,)),)),
    Tool("influx", r"influx", value=("-t", "-p", "-password"), short_attached=False),
    Tool("doctl", r"doctl", value=("-t",)),
    Tool("gh-secret", r"gh|glab", value_when={"secret": ("-b", "--body")}),
    Tool("mosquitto", r"mosquitto_pub|mosquitto_sub|mosquitto_rr", value=("-P",)),
    Tool("freerdp", r"xfreerdp|wlfreerdp|sdl-freerdp|xfreerdp3|sdl-freerdp3", prefixed=("/p:", "/password:", "/pth:")),
    Tool("x11vnc", r"x11vnc", value=("-passwd",)),
    Tool("keytool", r"keytool|jarsigner", value=("-new",), short_attached=False),
    Tool("pkcs11", r"pkcs11-tool|pkcs15-tool|yubico-piv-tool|ykman", value=("-p", "-P", "--pin", "--so-pin", "--puk")),
    Tool("qpdf", r"qpdf", positional=((("--encrypt",), (0, 1)),)),
    Tool("pdftk", r"pdftk", pairs_after=((),)),
    Tool("impacket", r"impacket-[\w-]+|[\w-]+\.py", value=("-hashes", "-aesKey"), userhost_operands=True),
    Tool("etcdctl", r"etcdctl", userpass={"--user": ":"}),
    Tool("openvpn", r"openvpn", nogeneric=("--auth-user-pass", "--http-proxy-user-pass")),
    Tool("wget", r"wget|wget2|aria2c"),
    # programs with no secret convention of their own: they end the previous program's options
    # (``sshpass -p PW ssh -p 2222 host``: the second -p is ssh's port)
    Tool("plain-programs", r"ssh|scp|sftp|rsync|ssh-copy-id|autossh|mosh|telnet|ftp|nc|ncat|socat|bash|sh|zsh|"
         r"dash|ksh|env|nohup|timeout|watch|xargs|nice|ionice|strace|ltrace|exec|time|stdbuf|setsid|runuser|"
         r"chroot|nsenter|unshare|systemd-run|flock|tee|cat|grep|awk|sed|python\d?(?:\.\d+)?|perl|ruby|node|java"),
)

# Programs whose literal arguments are what a stdin reader reads: ``echo pw | sudo -S id``.
STDIN_FEEDERS = {"echo", "printf", "yes"}

# --- whole-text rules --------------------------------------------------------------------------------
# (name, gates, regex): a rule runs only when the lower-cased text contains one of its gates
# (Python's re has no multi-literal prefilter; the gates keep a clean line at ~1 us).
# Each regex has the groups (keep-before, secret, keep-after).
TEXT_RULES = (
    ("private-key-block", ("private key-----",),
     r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)([\s\S]*?)(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)"),
    ("url-userinfo", ("://",), r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@'\"]*:)([^\s@/'\"]+)(@)"),
    ("url-token-user", ("://",), r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)([A-Za-z0-9_\-]{30,})(@)"),
    ("jdbc-oracle", ("jdbc:oracle",), r"(jdbc:oracle:\w+:[^/@\s:'\"]+/)([^@\s'\"]+)(@)"),
    ("slack-webhook", ("hooks.slack.com",), r"(hooks\.slack\.com/(?:services|workflows|triggers)/)([\w/+-]+)()"),
    ("discord-webhook", ("/api/webhooks/",), r"(discord(?:app)?\.com/api/webhooks/\d+/)([\w-]+)()"),
    ("teams-webhook", ("webhook.office.com", "outlook.office.com/webhook"),
     r"((?:webhook\.office\.com/webhookb2|outlook\.office\.com/webhook)/)([^\s'\"?]+)()"),
    ("telegram-bot", ("api.telegram.org/bot",), r"(api\.telegram\.org/bot)(\d+:[\w-]+)()"),
    ("webhook-path", ("/hooks/", "/webhooks/", "/webhook/", "/hook/"),
     r"(://[^\s/'\"]+/(?:[^\s/'\"?]+/)*?(?:hooks?|webhooks?)/)((?:[\w-]+/)*(?=[\w-]*[A-Za-z])[\w-]{16,}(?:/[\w-]+)*)()"),
    ("bearer", ("bearer",), r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=-]{8,})()"),
    ("sql-password", ("identified", "password"),
     r"(?i)((?:\bidentified\s+(?:with\s+\S+\s+)?by\s+(?:password\s+)?|\bwith\s+(?:encrypted\s+)?password\s+|"
     r"\bset\s+password\s*(?:for\s+\S+\s*)?=\s*(?:password\s*\(\s*)?|\b(?:user|role)\s[^'\";]*?\bpassword\s+|"
     r"\bpassword\s*\(\s*)\\?['\"])([^'\"\s\\]+)(\\?['\"])"),
    # Oracle: IDENTIFIED BY password, unquoted
    ("sql-identified-by", ("identified",),
     r"(?i)(\bidentified\s+by\s+)(?!values\b)([^'\"\s\\;,)]+)()"),
    # typed inside redis-cli (keystrokes): AUTH [user] password, CONFIG SET requirepass
    ("redis-interactive", ("auth", "requirepass", "masterauth"),
     r"(?i)(^\s*auth\s+(?:\S+\s+)?|\bconfig\s+set\s+(?:requirepass|masterauth)\s+)([^\s'\"]+)(\s*$)"),
    ("pgpass-line", ("pgpass",),
     r"((?:^|(?<=[\s'\"]))[^\s:'\"]+:(?:\d+|\*):[^\s:'\"]*[A-Za-z_*][^\s:'\"]*:[^\s:'\"]*[A-Za-z_*][^\s:'\"]*:)([^\s'\"]+)()"),
    ("netrc", ("machine",), r"(\bmachine\s+\S+\s+login\s+\S+\s+password\s+)([^\s'\"]+)()"),
    ("expect-send", ("send",),
     r"(?i)(expect\s+(?:-\w+\s+)?[\"'{][^\"'}]*(?:assword|passphrase|pin)[^\"'}]*[\"'}]\s*[;\n]?\s*send\s+(?:--\s+)?[\"'{])"
     r"([^\"'}\\\s]+)()"),
    ("mongo-shell-password", ("db.auth", "changeuserpassword"),
     r"(\bdb\.(?:auth|changeUserPassword)\(\s*['\"][^'\"]*['\"]\s*,\s*['\"])([^'\"]+)()"),
    ("redis-acl-password", ("setuser",), r"(?i)(\bacl\s+setuser\s+\S+(?:\s+[^>\s]\S*)*\s+>)(\S+)()"),
    ("zapier-ifttt-webhook", ("hooks.zapier.com", "maker.ifttt.com"),
     r"((?:hooks\.zapier\.com/hooks/catch/|maker\.ifttt\.com/trigger/[^/\s]+/with/key/))([\w-]+(?:/[\w-]+)*)()"),
    ("debconf-password", ("password",), r"(?i)(\s\S*pass\w*\s+password\s+)([^\s'\"]+)()"),
    ("aws-access-key-id", ("akia", "asia"), r"()(\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)()"),
    ("github-token", ("ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_"),
     r"()(\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}))()"),
    ("gitlab-token", ("glpat-", "glptt-", "gldt-", "glrt-", "glcbt-", "gr1348941"),
     r"()(\b(?:glpat|glptt|gldt|glrt|glcbt)-[A-Za-z0-9_\-]{20,}|\bGR1348941[A-Za-z0-9_\-]{20,})()"),
    ("slack-token", ("xox", "xapp-"), r"()(\bxox[abposre]-[A-Za-z0-9-]{10,}|\bxapp-\d-[A-Za-z0-9-]{10,})()"),
    ("jwt", ("eyj",), r"()(\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)()"),
    ("google-api-key", ("aiza",), r"()(\bAIza[0-9A-Za-z_\-]{35})()"),
    ("google-oauth-token", ("ya29.",), r"()(\bya29\.[0-9A-Za-z_\-]{20,})()"),
    ("stripe-key", ("_live_", "_test_"), r"()(\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,})()"),
    ("openai-anthropic-key", ("sk-",), r"()(\bsk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_\-]{32,})()"),
    ("sendgrid-key", ("sg.",), r"()(\bSG\.[\w-]{16,}\.[\w-]{16,})()"),
    ("npm-token", ("npm_",), r"()(\bnpm_[A-Za-z0-9]{36})()"),
    ("pypi-token", ("pypi-",), r"()(\bpypi-AgE[A-Za-z0-9_\-]{50,})()"),
    ("vault-token", ("hvs.", "hvb.", "hvr.", "s."), r"()(\bhv[sbr]\.[A-Za-z0-9_\-]{20,}|(?<![\w.])s\.[A-Za-z0-9]{24}\b)()"),
    ("docker-pat", ("dckr_pat_",), r"()(\bdckr_pat_[A-Za-z0-9_\-]{20,})()"),
    ("digitalocean-token", ("dop_v1_", "doo_v1_", "dor_v1_"), r"()(\bdo[por]_v1_[a-f0-9]{64})()"),
    ("huggingface-token", ("hf_",), r"()(\bhf_[A-Za-z0-9]{34,})()"),
    ("grafana-token", ("glc_", "glsa_"), r"()(\b(?:glc_[A-Za-z0-9+/=_-]{32,}|glsa_[A-Za-z0-9_]{32,}))()"),
    ("age-secret-key", ("age-secret-key-",), r"()(\bAGE-SECRET-KEY-1[0-9A-Z]{58})()"),
    ("shopify-token", ("shpat_", "shpss_", "shpca_", "shppa_"), r"()(\bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32})()"),
    ("atlassian-token", ("atatt",), r"()(\bATATT[A-Za-z0-9_\-=]{20,})()"),
)

# --- keystrokes ------------------------------------------------------------------------------------
# Programs that prompt for a password with echo off: a single typed word that follows such a line
# in the same TTY record (pam_tty_audit logs it only if echo was on or log_passwd is set) and is
# not a command is most likely the password ("prompt-line" rule).
PROMPTERS = {"su", "sudo", "passwd", "ssh", "scp", "sftp", "psql", "kinit", "login", "doas", "pkexec", "ftp",
             "telnet", "smbpasswd", "htpasswd", "ldappasswd", "gpg", "ssh-keygen", "ssh-add", "vault", "lftp",
             "smbclient", "cryptsetup", "ansible-vault", "sqlplus", "pg_dump", "pg_dumpall", "createuser",
             "docker", "podman", "helm", "openssl", "zip", "7z", "mongo", "mongosh", "ipmitool", "racadm",
             "kpasswd", "chpasswd", "vncpasswd", "git", "svn", "ldapsearch", "ldapmodify", "ldapadd", "ldapdelete"}
