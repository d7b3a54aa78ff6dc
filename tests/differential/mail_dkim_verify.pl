#!/usr/bin/perl
# Verify each message file named on the command line with Mail::DKIM (Strict: RFC 8301), asking
# the DNS server at 127.0.0.1:PORT (the tests' Knot). Prints one line per file: "<file>\t<result>\t<detail>".
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my $port = shift @ARGV or die "usage: mail_dkim_verify.pl PORT FILE...\n";
Mail::DKIM::DNS::resolver(
    Net::DNS::Resolver->new(nameservers => ['127.0.0.1'], port => $port, recurse => 0, udp_timeout => 5, tcp_timeout => 5)
);
for my $file (@ARGV) {
    open(my $fh, '<:raw', $file) or die "$file: $!\n";
    my $dkim = Mail::DKIM::Verifier->new(Strict => 1);
    while (my $chunk = <$fh>) {
        $dkim->PRINT($chunk);
    }
    close $fh;
    $dkim->CLOSE;
    my $detail = $dkim->result_detail // '';
    $detail =~ s/\s+/ /g;
    print join("\t", $file, $dkim->result, $detail), "\n";
}
