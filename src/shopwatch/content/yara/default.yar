/*
  YARA rules applied by shopwatch to HTTP request bodies (http.request.body.content).
  The matched rule names land in threat.yara.rules. Bodies arrive as sent: raw
  multipart uploads, JSON, or form-urlencoded text (hence the encoded variants).
  Keep rules specific: every request body of the shop passes through them.
*/

rule php_webshell_upload
{
    meta:
        description = "PHP code that runs commands or request input, as in a web shell upload"
        technique = "T1505.003"
    strings:
        $open1 = "<?php" nocase
        $open2 = "<?="
        $f1 = /\b(system|shell_exec|passthru|exec|popen|proc_open|pcntl_exec)\s*\(/ nocase
        $f2 = /\b(eval|assert)\s*\(\s*\$_(POST|GET|REQUEST|COOKIE|SERVER)/ nocase
        $f3 = /\$_(POST|GET|REQUEST|COOKIE)\s*\[[^\]]{1,40}\]\s*\(/ nocase
        $f4 = "move_uploaded_file" nocase
        $f5 = /\beval\s*\(/ nocase
    condition:
        any of ($open*) and any of ($f*)
}

rule php_eval_obfuscated_payload
{
    meta:
        description = "PHP eval of a decoded or decompressed payload (obfuscated web shell or dropper)"
        technique = "T1027"
    strings:
        $e1 = /\b(eval|assert)\s*\(\s*(base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|hex2bin)\s*\(/ nocase
        $e2 = /(eval|assert)(\(|%28)(base64_decode|gzinflate|str_rot13)(\(|%28)/ nocase
        $e3 = /preg_replace\s*\(\s*["'].{1,20}\/e["']/ nocase
        $e4 = /create_function\s*\(\s*["']{2}\s*,/ nocase
    condition:
        any of them
}

rule jsp_or_asp_webshell
{
    meta:
        description = "JSP or ASP code that executes request input"
        technique = "T1505.003"
    strings:
        $j1 = "Runtime.getRuntime().exec(" nocase
        $j2 = "request.getParameter(" nocase
        $a1 = /\b(eval|execute)\s*\(?\s*request(\.form|\.item)?\s*[\(\[]/ nocase
        $a2 = "<%@ Page Language=" nocase
        $a3 = "Process.Start(" nocase
    condition:
        ($j1 and $j2) or $a1 or ($a2 and $a3)
}

rule sqli_payload_in_body
{
    meta:
        description = "SQL injection payload in a request body (form, JSON or raw)"
        technique = "T1190"
    strings:
        $u1 = /union(\s|\+|%20|\/\*[^*]{0,20}\*\/)+(all(\s|\+|%20)+)?select(\s|\+|%20)/ nocase
        $t1 = /('|%27)\s*(\+|%20|\s)*or(\s|\+|%20)+('|%27)?\d+('|%27)?\s*(=|%3d)\s*('|%27)?\d+/ nocase
        $t2 = /('|%27)\s*(\+|%20|\s)*or(\s|\+|%20)+('|%27)[a-z0-9]+('|%27)\s*(=|%3d)\s*('|%27)[a-z0-9]+/ nocase
        $s1 = /\b(and|or)(\s|\+|%20)+(sleep|pg_sleep|benchmark)(\s|%20)*(\(|%28)\s*\d/ nocase
        $s2 = /waitfor(\s|\+|%20)+delay(\s|\+|%20)+('|%27)\d/ nocase
        $i1 = /information_schema\.(tables|columns)/ nocase
        $d1 = /;\s*drop(\s|\+|%20)+table(\s|\+|%20)/ nocase
    condition:
        any of them
}

rule reverse_shell_command
{
    meta:
        description = "Reverse shell one-liner in a request body (command injection payload)"
        technique = "T1059.004"
    strings:
        $b1 = /bash\s+-i\s*>&\s*\/dev\/tcp\// nocase
        $b2 = /\bnc(at)?\s+(-[a-z]+\s+)*-e\s+\/bin\/(ba)?sh/ nocase
        $b3 = /\/bin\/(ba)?sh\s+-i\b/
        $p1 = /python[23]?\s+-c\s+['"]import\s+socket/ nocase
    condition:
        any of them
}
