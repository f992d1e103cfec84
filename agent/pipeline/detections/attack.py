"""The subset of MITRE ATT&CK (Enterprise, v19 names) that agentd's rules and SigmaHQ's Linux rules use.

Vendored so nothing reaches the network: pySigma would otherwise download the whole
STIX bundle on first use. MITRE ATT&CK® is © The MITRE Corporation, reproduced under
its terms of use (https://attack.mitre.org/resources/legal-and-branding/terms-of-use/),
which grant a royalty-free licence to use and copy it with this notice.
Tactic ids of v19's two new tactics (stealth, defense-impairment) are not vendored
here: their names are, and the id stays empty rather than guessed.
"""

from __future__ import annotations

TACTICS = {
    "reconnaissance": ("TA0043", "Reconnaissance"),
    "resource-development": ("TA0042", "Resource Development"),
    "initial-access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege-escalation": ("TA0004", "Privilege Escalation"),
    "defense-evasion": ("TA0005", "Defense Evasion"),
    "stealth": ("", "Stealth"),
    "defense-impairment": ("", "Defense Impairment"),
    "credential-access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral-movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "command-and-control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "impact": ("TA0040", "Impact"),
}

# technique id -> (name, tactic short names)
TECHNIQUES = {
    "T1005": ("Data from Local System", ("collection",)),
    "T1007": ("System Service Discovery", ("discovery",)),
    "T1014": ("Rootkit", ("stealth",)),
    "T1016": ("System Network Configuration Discovery", ("discovery",)),
    "T1018": ("Remote System Discovery", ("discovery",)),
    "T1021": ("Remote Services", ("lateral-movement",)),
    "T1021.004": ("SSH", ("lateral-movement",)),
    "T1027": ("Obfuscated Files or Information", ("stealth",)),
    "T1027.010": ("Command Obfuscation", ("stealth",)),
    "T1027.011": ("Fileless Storage", ("stealth",)),
    "T1030": ("Data Transfer Size Limits", ("exfiltration",)),
    "T1033": ("System Owner/User Discovery", ("discovery",)),
    "T1036": ("Masquerading", ("stealth",)),
    "T1041": ("Exfiltration Over C2 Channel", ("exfiltration",)),
    "T1046": ("Network Service Discovery", ("discovery",)),
    "T1048": ("Exfiltration Over Alternative Protocol", ("exfiltration",)),
    "T1048.003": ("Exfiltration Over Unencrypted Non-C2 Protocol", ("exfiltration",)),
    "T1049": ("System Network Connections Discovery", ("discovery",)),
    "T1053": ("Scheduled Task/Job", ("execution", "persistence", "privilege-escalation")),
    "T1053.002": ("At", ("execution", "persistence", "privilege-escalation")),
    "T1053.003": ("Cron", ("execution", "persistence", "privilege-escalation")),
    "T1055": ("Process Injection", ("privilege-escalation", "stealth")),
    "T1055.009": ("Proc Memory", ("privilege-escalation", "stealth")),
    "T1059": ("Command and Scripting Interpreter", ("execution",)),
    "T1059.004": ("Unix Shell", ("execution",)),
    "T1059.006": ("Python", ("execution",)),
    "T1059.012": ("Hypervisor CLI", ("execution",)),
    "T1068": ("Exploitation for Privilege Escalation", ("privilege-escalation",)),
    "T1069": ("Permission Groups Discovery", ("discovery",)),
    "T1069.001": ("Local Groups", ("discovery",)),
    "T1070": ("Indicator Removal", ("stealth",)),
    "T1070.003": ("Clear Command History", ("stealth",)),
    "T1070.004": ("File Deletion", ("stealth",)),
    "T1070.006": ("Timestomp", ("stealth",)),
    "T1071": ("Application Layer Protocol", ("command-and-control",)),
    "T1071.001": ("Web Protocols", ("command-and-control",)),
    "T1078": ("Valid Accounts", ("initial-access", "persistence", "privilege-escalation")),
    "T1078.003": ("Local Accounts", ("initial-access", "persistence", "privilege-escalation")),
    "T1082": ("System Information Discovery", ("discovery",)),
    "T1083": ("File and Directory Discovery", ("discovery",)),
    "T1087": ("Account Discovery", ("discovery",)),
    "T1087.001": ("Local Account", ("discovery",)),
    "T1090": ("Proxy", ("command-and-control",)),
    "T1098": ("Account Manipulation", ("persistence", "privilege-escalation")),
    "T1102": ("Web Service", ("command-and-control",)),
    "T1105": ("Ingress Tool Transfer", ("command-and-control",)),
    "T1110": ("Brute Force", ("credential-access",)),
    "T1110.001": ("Password Guessing", ("credential-access",)),
    "T1110.003": ("Password Spraying", ("credential-access",)),
    "T1115": ("Clipboard Data", ("collection",)),
    "T1133": ("External Remote Services", ("initial-access", "persistence")),
    "T1136": ("Create Account", ("persistence",)),
    "T1136.001": ("Local Account", ("persistence",)),
    "T1140": ("Deobfuscate/Decode Files or Information", ("stealth",)),
    "T1190": ("Exploit Public-Facing Application", ("initial-access",)),
    "T1203": ("Exploitation for Client Execution", ("execution",)),
    "T1204": ("User Execution", ("execution",)),
    "T1204.001": ("Malicious Link", ("execution",)),
    "T1212": ("Exploitation for Credential Access", ("credential-access",)),
    "T1219": ("Remote Access Tools", ("command-and-control",)),
    "T1219.002": ("Remote Desktop Software", ("command-and-control",)),
    "T1222": ("File and Directory Permissions Modification", ("stealth",)),
    "T1222.002": ("Linux and Mac File and Directory Permissions Modification", ("stealth",)),
    "T1485": ("Data Destruction", ("impact",)),
    "T1489": ("Service Stop", ("impact",)),
    "T1496": ("Resource Hijacking", ("impact",)),
    "T1505": ("Server Software Component", ("persistence",)),
    "T1505.003": ("Web Shell", ("persistence",)),
    "T1518": ("Software Discovery", ("discovery",)),
    "T1518.001": ("Security Software Discovery", ("discovery",)),
    "T1529": ("System Shutdown/Reboot", ("impact",)),
    "T1531": ("Account Access Removal", ("impact",)),
    "T1548": ("Abuse Elevation Control Mechanism", ("privilege-escalation", "stealth")),
    "T1548.001": ("Setuid and Setgid", ("privilege-escalation", "stealth")),
    "T1548.003": ("Sudo and Sudo Caching", ("privilege-escalation", "stealth")),
    "T1552": ("Unsecured Credentials", ("credential-access",)),
    "T1552.001": ("Credentials In Files", ("credential-access",)),
    "T1553": ("Subvert Trust Controls", ("stealth",)),
    "T1553.004": ("Install Root Certificate", ("stealth",)),
    "T1554": ("Compromise Host Software Binary", ("persistence",)),
    "T1556": ("Modify Authentication Process", ("credential-access", "persistence")),
    "T1556.003": ("Pluggable Authentication Modules", ("credential-access", "persistence")),
    "T1563": ("Remote Service Session Hijacking", ("lateral-movement",)),
    "T1563.001": ("SSH Hijacking", ("lateral-movement",)),
    "T1564": ("Hide Artifacts", ("stealth",)),
    "T1565": ("Data Manipulation", ("impact",)),
    "T1565.001": ("Stored Data Manipulation", ("impact",)),
    "T1567": ("Exfiltration Over Web Service", ("exfiltration",)),
    "T1568": ("Dynamic Resolution", ("command-and-control",)),
    "T1568.002": ("Domain Generation Algorithms", ("command-and-control",)),
    "T1571": ("Non-Standard Port", ("command-and-control",)),
    "T1572": ("Protocol Tunneling", ("command-and-control",)),
    "T1574": ("Hijack Execution Flow", ("persistence", "privilege-escalation", "stealth")),
    "T1574.006": ("Dynamic Linker Hijacking", ("persistence", "privilege-escalation", "stealth")),
    "T1587": ("Develop Capabilities", ("resource-development",)),
    "T1588": ("Obtain Capabilities", ("resource-development",)),
    "T1588.001": ("Malware", ("resource-development",)),
    "T1592": ("Gather Victim Host Information", ("reconnaissance",)),
    "T1592.004": ("Client Configurations", ("reconnaissance",)),
    "T1593": ("Search Open Websites/Domains", ("reconnaissance",)),
    "T1593.003": ("Code Repositories", ("reconnaissance",)),
    "T1653": ("Power Settings", ("persistence",)),
    "T1685": ("Disable or Modify Tools", ("defense-impairment",)),
    "T1685.004": ("Disable or Modify Linux Audit System Log", ("defense-impairment",)),
    "T1685.006": ("Clear Linux or Mac System Logs", ("defense-impairment",)),
    "T1686": ("Disable or Modify System Firewall", ("defense-impairment",)),
    "T1690": ("Prevent Command History Logging", ("defense-impairment",)),
}


def pysigma_data() -> dict:
    """The shape pySigma's sigma.data.mitre_attack loader returns, from the vendored subset."""
    return {
        "mitre_attack_version": "19 (agentd subset)",
        "mitre_attack_tactics": {tid or short: short for short, (tid, _) in TACTICS.items()},
        "mitre_attack_techniques": {k: v[0] for k, v in TECHNIQUES.items()},
        "mitre_attack_techniques_tactics_mapping": {k: list(v[1]) for k, v in TECHNIQUES.items()},
        "mitre_attack_intrusion_sets": {}, "mitre_attack_software": {}, "mitre_attack_datasources": {},
        "mitre_attack_mitigations": {},
    }


def threat(technique_ids, tactic_names=()) -> dict:
    """ECS threat.* for these techniques (sub-techniques under technique.subtechnique) and tactics."""
    tech: dict = {"id": [], "name": [], "reference": []}
    sub: dict = {"id": [], "name": [], "reference": []}
    tactics = list(tactic_names)
    for tid in technique_ids:
        tid = tid.upper()
        name, tacs = TECHNIQUES.get(tid, ("", ()))
        parent, _, subpart = tid.partition(".")
        target = sub if subpart else tech
        if tid in target["id"]:
            continue
        target["id"].append(tid)
        target["name"].append(name or tid)
        target["reference"].append(f"https://attack.mitre.org/techniques/{parent}/{subpart + '/' if subpart else ''}")
        if subpart and parent not in tech["id"]:
            tech["id"].append(parent)
            tech["name"].append(TECHNIQUES.get(parent, (parent,))[0])
            tech["reference"].append(f"https://attack.mitre.org/techniques/{parent}/")
        if not tactic_names:
            tactics += [t for t in tacs if t not in tactics]
    out: dict = {"framework": "MITRE ATT&CK"}
    if tech["id"]:
        if sub["id"]:
            tech["subtechnique"] = sub
        out["technique"] = tech
    if tactics:
        known = [TACTICS.get(t, ("", t)) for t in tactics]
        out["tactic"] = {"id": [i for i, _ in known if i], "name": [n for _, n in known],
                         "reference": [f"https://attack.mitre.org/tactics/{i}/" for i, _ in known if i]}
    return out
